//! A TCP proxy between the daemon and its database server, to cut the
//! network and bring it back.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct TcpProxy {
    port: u16,
    target: SocketAddr,
    frozen: Arc<AtomicBool>,
    running: Option<ProxyRun>,
}

struct ProxyRun {
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: std::thread::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port and forwards to `target`.
    pub fn new(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy address").port();
        let mut proxy = TcpProxy { port, target, frozen: Arc::new(AtomicBool::new(false)), running: None };
        proxy.serve(listener);
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Listens again on the same port (retrying for a few seconds while it is busy).
    #[track_caller]
    pub fn start(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("proxy: port {} not free yet ({e}); retrying", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("proxy: cannot listen on port {} again: {e}", self.port),
            }
        };
        self.serve(listener);
    }

    /// Closes the listener and shuts down every forwarded connection, both ways.
    pub fn stop(&mut self) {
        if let Some(run) = self.running.take() {
            run.stop.store(true, Ordering::SeqCst);
            let _ = run.acceptor.join();
            for socket in run.sockets.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// Stops forwarding: connections stay open (new ones are accepted) but no byte passes.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again what [`freeze`](Self::freeze) held back.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (target, frozen) = (self.target, self.frozen.clone());
        let acceptor = {
            let (stop, sockets) = (stop.clone(), sockets.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            if let Ok(clone) = client.try_clone() {
                                sockets.lock().unwrap_or_else(|e| e.into_inner()).push(clone);
                            }
                            let (stop, sockets, frozen) = (stop.clone(), sockets.clone(), frozen.clone());
                            std::thread::spawn(move || proxy_connection(client, target, &stop, &sockets, &frozen));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                // The listener is dropped here: new connections are refused.
            })
        };
        self.running = Some(ProxyRun { stop, sockets, acceptor });
    }
}

/// Holds `client` while frozen, then connects it to `target` and copies both ways.
fn proxy_connection(
    client: TcpStream,
    target: SocketAddr,
    stop: &Arc<AtomicBool>,
    sockets: &Arc<Mutex<Vec<TcpStream>>>,
    frozen: &Arc<AtomicBool>,
) {
    while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if stop.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    {
        let mut all = sockets.lock().unwrap_or_else(|e| e.into_inner());
        if stop.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        if let Ok(clone) = upstream.try_clone() {
            all.push(clone);
        }
    }
    let pairs = [
        (client.try_clone().expect("clone client"), upstream.try_clone().expect("clone upstream")),
        (upstream, client),
    ];
    for (from, to) in pairs {
        let (stop, frozen) = (stop.clone(), frozen.clone());
        std::thread::spawn(move || copy_until_closed(from, to, &stop, &frozen));
    }
}

fn copy_until_closed(mut from: TcpStream, mut to: TcpStream, stop: &AtomicBool, frozen: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if stop.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.thaw();
        self.stop();
    }
}
