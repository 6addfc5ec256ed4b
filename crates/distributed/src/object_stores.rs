//! Object stores for cluster processes. The scheduler (planning a scan) and the executors
//! (reading it) see the table's files by URL — `s3://bucket/…` or `file:///…` — and build the
//! store on first use, S3 configured by the same `AWS_*` variables as every Northstar command.
//! `memory://` locations live inside one process and cannot be shared, so they are refused
//! with that reason.

use std::sync::Arc;

use datafusion::common::{plan_err, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use url::Url;

#[derive(Debug, Default)]
pub struct ClusterObjectStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for ClusterObjectStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => Arc::new(s3_store(url)?),
            "memory" => {
                return plan_err!(
                    "{url} is a memory:// location, which exists only inside the process that made it; \
                     a cluster needs a location every process can reach (s3://… or a shared directory)"
                )
            }
            other => {
                return plan_err!(
                    "no object store for scheme '{other}' ({url}); Northstar clusters read s3:// and local paths"
                )
            }
        };
        self.known.register_store(url, store.clone());
        Ok(store)
    }
}

/// An S3 store for the bucket of `url`, configured from `AWS_*` variables; plain HTTP only
/// when the endpoint itself says `http://` (a local S3-compatible server).
fn s3_store(url: &Url) -> Result<object_store::aws::AmazonS3> {
    let bucket = url.host_str().unwrap_or_default();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(endpoint.starts_with("http://"))
        .build()
        .or_else(|e| plan_err!("cannot open s3://{bucket}: {e}"))
}
