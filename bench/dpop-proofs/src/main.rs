//! DPoP keys and proofs for `bench/run`'s DPoP whoami figure, made with the
//! CLI's own proof code (`envshield-api-types`, feature `dpop`):
//!
//! ```text
//! dpop-proofs keys N OUT_DIR
//!     N P-256 keys: OUT_DIR/dpop_keys.txt (stored form, one a line) and
//!     OUT_DIR/dpop_jkts.txt (their RFC 7638 thumbprints, for api_tokens.dpop_jkt)
//! dpop-proofs proofs TOKENS KEYS URL COUNT OUT
//!     COUNT lines "<token> <proof>" for GET URL: request i uses token
//!     i mod n with its key (line i mod n of each file), a fresh jti, the
//!     token's hash as ath and now as iat; proofs are made on every core
//! ```
//!
//! A proof is accepted for five minutes after its `iat` (src/auth/dpop.rs,
//! MAX_AGE) and once only, so the harness makes them just before each run.

use std::fs;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use envshield_api_types::dpop::DpopKey;

fn lines(path: &str) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn keys(n: usize, out: &str) -> Result<(), String> {
    let mut stored = String::new();
    let mut jkts = String::new();
    for _ in 0..n {
        let key = DpopKey::generate_p256().map_err(|e| e.0.to_owned())?;
        stored.push_str(&key.to_stored());
        stored.push('\n');
        jkts.push_str(&key.thumbprint());
        jkts.push('\n');
    }
    fs::write(format!("{out}/dpop_keys.txt"), stored).map_err(|e| e.to_string())?;
    fs::write(format!("{out}/dpop_jkts.txt"), jkts).map_err(|e| e.to_string())
}

fn proofs(tokens: &str, keys: &str, url: &str, count: usize, out: &str) -> Result<(), String> {
    let tokens = lines(tokens)?;
    let keys = lines(keys)?
        .iter()
        .map(|k| DpopKey::from_stored(k).map_err(|e| e.0.to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    if tokens.is_empty() || tokens.len() != keys.len() {
        return Err(format!(
            "{} tokens and {} keys: one key per token is needed",
            tokens.len(),
            keys.len()
        ));
    }
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads);
    let parts: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (tokens, keys) = (&tokens, &keys);
                s.spawn(move || {
                    let mut text = String::new();
                    for i in (t * chunk)..((t + 1) * chunk).min(count) {
                        let j = i % tokens.len();
                        let proof = keys[j]
                            .proof("GET", url, Some(&tokens[j]), iat)
                            .map_err(|e| e.0.to_owned())?;
                        text.push_str(&tokens[j]);
                        text.push(' ');
                        text.push_str(&proof);
                        text.push('\n');
                    }
                    Ok(text)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread failed".into())))
            .collect()
    });
    let file = fs::File::create(out).map_err(|e| format!("{out}: {e}"))?;
    let mut w = BufWriter::new(file);
    for part in parts {
        w.write_all(part?.as_bytes()).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let done = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["keys", n, out] => n
            .parse()
            .map_err(|_| format!("not a count: {n}"))
            .and_then(|n| keys(n, out)),
        ["proofs", tokens, keys, url, count, out] => count
            .parse()
            .map_err(|_| format!("not a count: {count}"))
            .and_then(|c| proofs(tokens, keys, url, c, out)),
        _ => Err("usage: dpop-proofs keys N OUT_DIR | proofs TOKENS KEYS URL COUNT OUT".into()),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpop-proofs: {e}");
            ExitCode::FAILURE
        }
    }
}
