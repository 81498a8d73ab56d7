//! A small HTTP/1.1 origin server on loopback for the outbound HTTP tests:
//! fixed routes (plain answers, redirects to other hosts, ports and private
//! addresses, huge and slow bodies), and a count of the requests each path
//! received, so a test can tell that a refused request never arrived.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A small HTTP/1.1 server on loopback with the routes the tests need; it
/// counts the requests each path received.
pub struct Origin {
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

/// Bytes of the `/huge` body.
pub const HUGE: usize = 4 << 20;

impl Origin {
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let h = h.clone();
                std::thread::spawn(move || serve(conn, port, &h));
            }
        });
        Origin { port, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(mut conn: TcpStream, port: u16, hits: &Mutex<HashMap<String, u32>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    // Skip the headers.
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let redirect = |to: &str| {
        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    };
    let ok = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = match path.as_str() {
        "/ok" => ok("hello, egress"),
        "/redirect-ok" => redirect("/ok"),
        "/redirect-away" => redirect("http://elsewhere.example.com/ok"),
        "/redirect-metadata" => redirect("http://169.254.169.254/latest/meta-data/"),
        "/redirect-other-port" => redirect(&format!("http://127.0.0.1:{}/ok", port + 1)),
        "/huge" => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\nConnection: close\r\n\r\n");
            let _ = conn.write_all(head.as_bytes());
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..HUGE / chunk.len() {
                if conn.write_all(&chunk).is_err() {
                    return;
                }
            }
            return;
        }
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            ok("late")
        }
        "/slow-body" => {
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789",
            );
            std::thread::sleep(Duration::from_secs(3));
            "x".repeat(90)
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    let _ = conn.write_all(reply.as_bytes());
}
