//! A TCP proxy on loopback that a test can cut (close every connection and refuse new ones) and
//! restore, or arm to cut when the client sends a given byte pattern (e.g. a `COMMIT`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

struct Shared {
    upstream: SocketAddr,
    refusing: AtomicBool,
    stop: AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
    /// (pattern, forward it before cutting)
    armed: Mutex<Option<(Vec<u8>, bool)>>,
    cuts: AtomicU64,
    accepted: AtomicU64,
}

impl Shared {
    fn cut_all(&self) {
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.cuts.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to the server of `database_url` (`mysql://user@host:port/db`).
    pub fn start(database_url: &str) -> Proxy {
        let after = database_url.split_once('@').unwrap().1;
        let host_port = after.split('/').next().unwrap();
        let upstream: SocketAddr = host_port.parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            refusing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
            armed: Mutex::new(None),
            cuts: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let thread = std::thread::spawn(move || accept_loop(&listener, &accept_shared));
        Proxy {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// `database_url` through the proxy.
    pub fn url(&self, database_url: &str) -> String {
        let (user, after) = database_url.split_once('@').unwrap();
        let (_, path) = after.split_once('/').unwrap();
        format!("{user}@127.0.0.1:{}/{path}", self.port)
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.shared.refusing.store(true, Ordering::Release);
        self.shared.cut_all();
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.shared.refusing.store(false, Ordering::Release);
    }

    /// Cuts every connection once the client sends `pattern` (forwarding it first or not).
    pub fn arm_cut_on(&self, pattern: &[u8], forward_first: bool) {
        *self.shared.armed.lock().unwrap() = Some((pattern.to_vec(), forward_first));
    }

    /// Whether an armed cut has not fired yet.
    pub fn is_armed(&self) -> bool {
        self.shared.armed.lock().unwrap().is_some()
    }

    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.cut_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((client, _)) => {
                if shared.refusing.load(Ordering::Acquire) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) =
                    TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                {
                    let mut connections = shared.connections.lock().unwrap();
                    connections.push(client.try_clone().unwrap());
                    connections.push(server.try_clone().unwrap());
                }
                let up = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let shared_up = Arc::clone(shared);
                std::thread::spawn(move || pump(up.0, up.1, Some(&shared_up)));
                std::thread::spawn(move || pump(server, client, None));
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, inspect: Option<&Shared>) {
    let mut buf = vec![0_u8; 64 << 10];
    loop {
        let read = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buf[..read];
        if let Some(shared) = inspect {
            let mut armed = shared.armed.lock().unwrap();
            let hit = armed.as_ref().is_some_and(|(pattern, _)| {
                chunk
                    .windows(pattern.len())
                    .any(|window| window == pattern.as_slice())
            });
            if hit {
                let (_, forward_first) = armed.take().unwrap();
                drop(armed);
                if forward_first {
                    let _ = to.write_all(chunk);
                    let _ = to.flush();
                }
                shared.cut_all();
                break;
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
