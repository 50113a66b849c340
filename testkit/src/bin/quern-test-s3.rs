//! A throwaway S3-compatible server for trying Quern on S3 by hand: serves s3s-fs on a loopback
//! port, creates the buckets named on the command line, optionally uploads a local directory, and
//! prints the environment a `quern` process needs. Serves until it is killed (Ctrl-C).
//!
//! `quern-test-s3 BUCKET [LOCAL_DIR KEY_PREFIX]`

use quern_testkit::S3Server;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bucket) = args.first() else {
        eprintln!("usage: quern-test-s3 BUCKET [LOCAL_DIR KEY_PREFIX]");
        std::process::exit(2);
    };
    let server = S3Server::start();
    server.create_bucket(bucket);
    if let [_, dir, prefix] = args.as_slice() {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                eprintln!("quern-test-s3: cannot read {dir}: {e}");
                std::process::exit(1);
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let (Some(name), Ok(data)) = (path.file_name(), std::fs::read(&path)) {
                server.put_file(
                    bucket,
                    &format!("{prefix}/{}", name.to_string_lossy()),
                    &data,
                );
            }
        }
    }
    for (name, value) in server.env() {
        println!("export {name}={value}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
