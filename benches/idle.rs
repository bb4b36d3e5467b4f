//! Idle connections held open against `gazette serve` vs the latency of
//! `/healthz` and the server's open file descriptors.
//!
//! usage: cargo bench --bench idle -- [N,N,...=0,1000,2000,5000,10000]
//! (`GAZETTE_BIN=path` measures another build of gazette, e.g. one from
//! before the `[http]` limits, for comparison; `SERVER_NOFILE=n` runs the
//! server under `prlimit --nofile=n`, as a service with a low limit.)
//!
//! For each N: starts `gazette serve` with the default `[http]` settings on
//! an empty store, opens N TCP connections that send nothing, then times 20
//! `/healthz` requests (each on a new connection, 2 s timeout) and counts the
//! server's open file descriptors (/proc/PID/fd).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(|a| a.split(',').map(|n| n.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![0, 1000, 2000, 5000, 10000]);
    let bin = std::env::var("GAZETTE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gazette").into());
    raise_fd_limit(sizes.iter().max().copied().unwrap_or(0) as u64 + 1000);
    println!("gazette: {bin}");
    println!("| idle connections | /healthz median ms | max ms | failed of 20 | server fds |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("feeds.toml");
        std::fs::write(
            &config,
            format!("database = \"sqlite://gazette.db\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n"),
        )
        .unwrap();
        let nofile = std::env::var("SERVER_NOFILE").ok();
        let mut cmd = match &nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let mut server = Server(
            cmd.arg("--config")
                .arg(&config)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        while healthz(port).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "gazette serve did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut idle = Vec::with_capacity(n);
        for _ in 0..n {
            match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))
            {
                Ok(s) => idle.push(s),
                Err(e) => {
                    println!("(connection {} of {n} failed: {e})", idle.len() + 1);
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut times = Vec::new();
        let mut failed = 0;
        for _ in 0..20 {
            match healthz(port) {
                Some(t) => times.push(t),
                None => failed += 1,
            }
        }
        times.sort();
        let ms = |d: Option<&Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
        };
        let fds = std::fs::read_dir(format!("/proc/{}/fd", server.0.id()))
            .map(|d| d.count())
            .unwrap_or(0);
        println!(
            "| {n} | {} | {} | {failed} | {fds} |",
            ms(times.get(times.len() / 2)),
            ms(times.last())
        );
        drop(idle);
        server.stop();
    }
}

/// The time a `/healthz` took, or `None` when it failed or took over 2 s.
fn healthz(port: u16) -> Option<Duration> {
    let t = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    out.starts_with(b"HTTP/1.1 200").then(|| t.elapsed())
}

struct Server(Child);

impl Server {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raises the soft limit on open files to `want` (at most the hard limit).
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
