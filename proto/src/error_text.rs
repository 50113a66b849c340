//! Errors as users read them: one line, `what failed: why`, in the form errors take on the wire
//! (status messages, task reports, job failures) and on a terminal, where a cause chain cannot
//! travel.
//!
//! A plain walk down `source()` reads badly for gRPC errors: tonic's `Status` prints itself as a
//! debug dump (`code: '…', message: "…", source: tonic::transport::Error(…)`), and its transport
//! causes repeat one another (`tcp connect error: tcp connect error`). So [`error_chain`] renders
//! a status as its message, leaves out a cause whose text is already said, and replaces the
//! layers of a failed call by its short cause (`connection refused`, `timed out`,
//! `connection reset`) when there is one. [`source_chain`] is the plain walk, for code that
//! matches on error text.

use std::error::Error;
use std::io::ErrorKind;

/// An error and its causes on one line, `a: b: c`, each said once; a failed gRPC call ends in
/// its short cause when it has one: `cannot fetch map output m-00012 from
/// http://127.0.0.1:34337: connection refused`.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut level = Some(e);
    while let Some(error) = level {
        if is_call_layer(error)
            && let Some(cause) = transport_cause(error)
        {
            push_new(&mut parts, cause.to_string());
            break;
        }
        push_new(&mut parts, describe(error));
        level = error.source();
    }
    parts.join(": ")
}

/// Every level's own text, unabridged, `a: b: c`: for matching on what a library said (S3 error
/// codes, HTTP statuses), never for showing.
pub fn source_chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One level's own text, on one line: a status by its message alone, an I/O failure of a
/// connection by its short cause.
fn describe(error: &(dyn Error + 'static)) -> String {
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        return match status.message() {
            "" => status.code().description().to_string(),
            message => one_line(message),
        };
    }
    if let Some(cause) = short_cause(error) {
        return cause.to_string();
    }
    let text = one_line(&error.to_string());
    // tonic's wrapper around every transport failure says nothing of its own.
    if error.is::<tonic::transport::Error>() && text == "transport error" {
        return String::new();
    }
    text
}

/// Adds `text` unless it is empty or an earlier part already says it.
fn push_new(parts: &mut Vec<String>, text: String) {
    if !text.is_empty() && !parts.iter().any(|part| part.contains(&text)) {
        parts.push(text);
    }
}

/// tonic's layers of a call: the status, the transport error, the connect error. What they wrap
/// is the interesting part.
fn is_call_layer(error: &(dyn Error + 'static)) -> bool {
    error.is::<tonic::Status>()
        || error.is::<tonic::transport::Error>()
        || error.is::<tonic::ConnectError>()
}

/// The short cause of a failed call, anywhere below (or at) `error`.
fn transport_cause(error: &(dyn Error + 'static)) -> Option<&'static str> {
    let mut level = Some(error);
    while let Some(error) = level {
        if let Some(cause) = short_cause(error) {
            return Some(cause);
        }
        level = error.source();
    }
    None
}

/// The few connection failures a user recognises at a glance.
fn short_cause(error: &(dyn Error + 'static)) -> Option<&'static str> {
    if error.is::<tonic::TimeoutExpired>() {
        return Some("timed out");
    }
    let io = error.downcast_ref::<std::io::Error>()?;
    match io.kind() {
        ErrorKind::ConnectionRefused => Some("connection refused"),
        ErrorKind::TimedOut => Some("timed out"),
        ErrorKind::ConnectionReset => Some("connection reset"),
        ErrorKind::ConnectionAborted => Some("connection aborted"),
        ErrorKind::BrokenPipe => Some("connection closed"),
        _ => None,
    }
}

/// `text` with its lines joined by spaces.
fn one_line(text: &str) -> String {
    if !text.contains('\n') {
        return text.to_string();
    }
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GetJobRequest;
    use crate::coordinator_client::CoordinatorClient;
    use std::time::Duration;
    use tonic::transport::Endpoint;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot fetch map output m-00012 from {address}")]
    struct Fetch {
        address: String,
        #[source]
        source: tonic::Status,
    }

    /// An address on which nothing listens.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    async fn call(endpoint: Endpoint) -> tonic::Status {
        let mut client = CoordinatorClient::new(endpoint.connect_lazy());
        client
            .get_job(GetJobRequest::default())
            .await
            .expect_err("nobody answers")
    }

    #[tokio::test]
    async fn a_call_to_a_closed_port_reads_connection_refused() {
        let address = closed_port();
        let status = call(Endpoint::from_shared(address.clone()).unwrap()).await;
        // What tonic's own Display makes of it, which is what users used to see.
        assert!(status.to_string().contains("source: "), "{status}");
        assert_eq!(error_chain(&status), "connection refused");
        let fetch = Fetch {
            address: address.clone(),
            source: status,
        };
        assert_eq!(
            error_chain(&fetch),
            format!("cannot fetch map output m-00012 from {address}: connection refused")
        );
    }

    #[tokio::test]
    async fn a_failed_connect_reads_connection_refused() {
        let error = Endpoint::from_shared(closed_port())
            .unwrap()
            .connect()
            .await
            .expect_err("nobody listens");
        assert_eq!(error_chain(&error), "connection refused");
        // The plain walk repeats itself: that is what the dedupe is for.
        assert!(
            source_chain(&error).contains("tcp connect error: tcp connect error"),
            "{}",
            source_chain(&error)
        );
    }

    #[tokio::test]
    async fn a_call_to_a_peer_that_never_answers_reads_timed_out() {
        // Accepts connections and never says a word.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let endpoint = Endpoint::from_shared(address)
            .unwrap()
            .timeout(Duration::from_millis(200));
        assert_eq!(error_chain(&call(endpoint).await), "timed out");
    }

    #[tokio::test]
    async fn a_peer_that_closes_the_connection_gives_one_line_without_repeats() {
        // Accepts connections and drops them at once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
            }
        });
        let text = error_chain(&call(Endpoint::from_shared(address).unwrap()).await);
        assert!(!text.contains('\n') && !text.contains("code: "), "{text}");
        let parts: Vec<&str> = text.split(": ").collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(!parts[..i].contains(part), "{text}");
        }
    }

    #[test]
    fn a_status_from_a_peer_reads_as_its_message() {
        let status = tonic::Status::not_found("map output 7 is not held here");
        let fetch = Fetch {
            address: "http://10.0.0.5:7071".into(),
            source: status,
        };
        assert_eq!(
            error_chain(&fetch),
            "cannot fetch map output m-00012 from http://10.0.0.5:7071: \
             map output 7 is not held here"
        );
        let bare = tonic::Status::new(tonic::Code::Unavailable, "");
        assert_eq!(error_chain(&bare), "The service is currently unavailable");
    }

    #[test]
    fn a_cause_already_said_is_left_out_and_lines_are_joined() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read s3://b/k: {source}")]
        struct Inlined {
            source: std::io::Error,
        }
        impl Inlined {
            fn new() -> Inlined {
                Inlined {
                    source: std::io::Error::other("the disk\nis on fire"),
                }
            }
        }
        // The inlined cause comes again as the source: once is enough.
        assert_eq!(
            error_chain(&Inlined::new()),
            "cannot read s3://b/k: the disk is on fire"
        );
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        assert_eq!(error_chain(&refused), "connection refused");
    }
}
