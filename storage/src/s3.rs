//! S3-compatible stores, one per bucket per process, configured from this process's environment:
//! the standard `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` as the AWS SDKs name it, or object_store's `AWS_ENDPOINT`), and
//! `AWS_ALLOW_HTTP=true` for plain-HTTP servers. With an endpoint set, requests are path-style, as
//! MinIO-style servers want. Retries and timeouts are bounded, so an unreachable endpoint fails in
//! seconds, not minutes. Credentials never leave the process: not in a job, a log or an error.

use crate::{StorageError, StorageUrl};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const CONNECT_TIMEOUT: &str = "3s";
const REQUEST_TIMEOUT: &str = "60s";
const MAX_RETRIES: usize = 3;
/// The longest a request keeps being retried (for transient errors: 5xx, resets, throttling).
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) struct S3Client {
    pub store: Arc<AmazonS3>,
    /// The endpoint, for messages: the configured URL, or AWS's regional endpoint.
    pub endpoint: Arc<str>,
}

/// The store for `bucket`, made on first use.
pub(crate) fn client(bucket: &str, url: &StorageUrl) -> Result<S3Client, StorageError> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, S3Client>>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Mutex::default);
    let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(client) = clients.get(bucket) {
        return Ok(client.clone());
    }
    let client = build(bucket, url)?;
    clients.insert(bucket.to_string(), client.clone());
    Ok(client)
}

fn client_key(key: ClientConfigKey) -> AmazonS3ConfigKey {
    AmazonS3ConfigKey::Client(key)
}

fn build(bucket: &str, url: &StorageUrl) -> Result<S3Client, StorageError> {
    let builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(false)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
        })
        // Set key by key: with_client_options would drop AWS_ALLOW_HTTP read from the environment.
        .with_config(client_key(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT)
        .with_config(client_key(ClientConfigKey::Timeout), REQUEST_TIMEOUT);
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .unwrap_or_else(|| {
            let region = builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .unwrap_or_else(|| "us-east-1".to_string());
            format!("https://s3.{region}.amazonaws.com")
        });
    let store = builder.build().map_err(|e| StorageError::Config {
        url: url.to_string(),
        endpoint: endpoint.clone(),
        reason: e.to_string(),
    })?;
    Ok(S3Client {
        store: Arc::new(store),
        endpoint: Arc::from(endpoint),
    })
}
