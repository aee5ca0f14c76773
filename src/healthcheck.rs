//! `envshield-server healthcheck`: asks the server on `BIND_ADDR` for
//! `/health/ready`, so a container image needs no curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where to reach a server listening on `bind_addr`: a wildcard address
/// (`0.0.0.0`, `[::]`) is reached on loopback.
pub fn target(bind_addr: &str) -> Result<SocketAddr, String> {
    let mut addr = bind_addr
        .to_socket_addrs()
        .map_err(|e| format!("BIND_ADDR `{bind_addr}` is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("BIND_ADDR `{bind_addr}` resolves to no address"))?;
    if addr.port() == 0 {
        return Err(format!(
            "BIND_ADDR `{bind_addr}` picks a free port at start; set a fixed one to check it"
        ));
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// `Ok` when `GET /health/ready` on `addr` answers 200 within `timeout`
/// (for the connection, and again for the answer); otherwise why not.
pub fn check_ready(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("nothing answers on {addr}: {e}"))?;
    let io = |e: std::io::Error| format!("{addr}: {e}");
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request =
        format!("GET /health/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    // The status line is all we need; it fits in the first read or two.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.lines().next().unwrap_or_default();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("{addr}/health/ready answered {code}")),
        None => Err(format!("{addr} did not answer HTTP")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        assert_eq!(
            target("0.0.0.0:3000").unwrap(),
            "127.0.0.1:3000".parse().unwrap()
        );
        assert_eq!(target("[::]:8080").unwrap(), "[::1]:8080".parse().unwrap());
        assert_eq!(
            target("10.1.2.3:3000").unwrap(),
            "10.1.2.3:3000".parse().unwrap()
        );
        assert!(target("127.0.0.1:0").unwrap_err().contains("fixed"));
        assert!(target("no port").is_err());
    }

    #[test]
    fn a_closed_port_is_a_failure() {
        // A port that was free a moment ago: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = check_ready(closed, Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("nothing answers"), "{e}");
    }
}
