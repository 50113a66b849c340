//! The floor under the coordinator's idle CPU (`bench/control_plane.sh`): the same heartbeats,
//! from as many workers over as many connections, each second, spread over the second, received
//! by the plainest program that can take them. That is a one-thread tokio loop reading
//! length-prefixed messages off TCP and noting each worker's last heartbeat in a map, with no
//! HTTP/2, no gRPC, no protobuf, no sessions. Whatever the coordinator spends above this is
//! its protocol stack and its own code; this much is the kernel's.
//!
//!   heartbeat-floor receive ADDR          (prints `listening on ADDR`, then runs until killed)
//!   heartbeat-floor send ADDR WORKERS CONNECTIONS

use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A heartbeat's size on the wire in the coordinator's protocol: a worker id of about 26 bytes
/// in a protobuf message, behind a gRPC prefix (5 bytes) and an HTTP/2 frame header (9 bytes).
const MESSAGE: usize = 44;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["receive", addr] => runtime.block_on(receive(addr)),
        ["send", addr, workers, connections] => {
            runtime.block_on(send(addr, workers.parse()?, connections.parse()?))
        }
        _ => Err("usage: heartbeat-floor receive ADDR | send ADDR WORKERS CONNECTIONS".into()),
    }
}

async fn receive(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(take_heartbeats(stream));
    }
}

/// Reads one connection's heartbeats (a 4-byte length, then the worker number and padding)
/// and notes when each worker was last heard from.
async fn take_heartbeats(mut stream: TcpStream) -> std::io::Result<()> {
    let mut last_seen: HashMap<u32, Instant> = HashMap::new();
    let mut buffer = Vec::with_capacity(64 << 10);
    loop {
        if stream.read_buf(&mut buffer).await? == 0 {
            return Ok(());
        }
        let mut at = 0;
        while let Some(header) = buffer.get(at..at + 4) {
            let length = u32::from_le_bytes(header.try_into().expect("4 bytes")) as usize;
            let Some(body) = buffer.get(at + 4..at + 4 + length) else {
                break;
            };
            if let Some(worker) = body.get(..4) {
                let worker = u32::from_le_bytes(worker.try_into().expect("4 bytes"));
                last_seen.insert(worker, Instant::now());
            }
            at += 4 + length;
        }
        buffer.drain(..at);
    }
}

/// `workers` heartbeat senders over `connections` connections, each sending once a second,
/// started spread over the first second.
async fn send(
    addr: &str,
    workers: u32,
    connections: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream = std::sync::Arc::new(tokio::sync::Mutex::new(stream));
        for worker in (connection..workers).step_by(connections as usize) {
            let stream = stream.clone();
            let offset = Duration::from_secs(1).mul_f64(worker as f64 / workers as f64);
            tasks.spawn(async move {
                tokio::time::sleep(offset).await;
                let mut message = vec![0u8; MESSAGE];
                message[..4].copy_from_slice(&(MESSAGE as u32 - 4).to_le_bytes());
                message[4..8].copy_from_slice(&worker.to_le_bytes());
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    stream.lock().await.write_all(&message).await?;
                }
            });
        }
    }
    while let Some(ended) = tasks.join_next().await {
        let result: std::io::Result<()> = ended?;
        result?;
    }
    Ok(())
}
