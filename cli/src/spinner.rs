//! A small spinner on stderr while the CLI waits for the browser.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// A spinning line on stderr with a message that can change. Stops and
/// clears its line when dropped.
#[derive(Debug)]
pub struct Spinner {
    stop: Arc<AtomicBool>,
    message: Arc<Mutex<String>>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner, or returns `None` when stderr is not a terminal
    /// (logs and pipes get no carriage-return animation).
    pub fn start(message: &str) -> Option<Self> {
        if !io::stderr().is_terminal() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let text = Arc::new(Mutex::new(message.to_string()));
        let thread = {
            let stop = Arc::clone(&stop);
            let text = Arc::clone(&text);
            thread::spawn(move || {
                let mut frame = 0;
                while !stop.load(Ordering::Relaxed) {
                    let message = text.lock().map(|m| m.clone()).unwrap_or_default();
                    let mut err = io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K{} {message}", FRAMES[frame]);
                    let _ = err.flush();
                    drop(err);
                    frame = (frame + 1) % FRAMES.len();
                    thread::sleep(Duration::from_millis(100));
                }
                let mut err = io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
            })
        };
        Some(Self {
            stop,
            message: text,
            thread: Some(thread),
        })
    }

    /// Replaces the message shown next to the spinner.
    pub fn set_message(&self, message: &str) {
        if let Ok(mut m) = self.message.lock() {
            *m = message.to_string();
        }
    }

    /// Stops the spinner and clears its line.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.halt();
    }
}
