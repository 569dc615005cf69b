//! Installing CustomResourceDefinitions and waiting until they are served.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::{Api, Client};

use crate::error::{Error, Result, kube as kube_err};

/// How long a CRD may take to be established and served.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates `crd`, or replaces it if it exists, then waits until its `Established` condition is
/// `True` for the current generation and its first served version answers a list request.
///
/// Safe to call from many tests at once: a concurrent create or update is retried.
///
/// # Errors
///
/// When the API server refuses the CRD, or [`Error::Timeout`] after 60 s, with the CRD's
/// conditions as observed last.
///
/// # Caveats
///
/// The controller manager's garbage collector notices a new kind only on its 30-second
/// discovery resync, so owner references from objects of a brand-new kind are acted upon up to
/// 30 s late.
pub async fn install_crd(client: &Client, crd: CustomResourceDefinition) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    let deadline = Instant::now() + CRD_TIMEOUT;
    let mut attempt = 0;
    let generation = loop {
        attempt += 1;
        // Another test may create or update the same CRD between our read and write: retry on
        // AlreadyExists and Conflict.
        let written = match api.get_opt(&name).await {
            Ok(None) => api.create(&PostParams::default(), &crd).await,
            Ok(Some(current)) => {
                let mut desired = crd.clone();
                desired.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &desired).await
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(written) => break written.metadata.generation.unwrap_or(0),
            Err(kube::Error::Api(s))
                if (s.is_already_exists() || s.is_conflict()) && attempt < 10 => {}
            Err(e) => return Err(kube_err(format!("install CRD {name}"))(e)),
        }
    };

    loop {
        let current = api
            .get(&name)
            .await
            .map_err(kube_err(format!("read CRD {name}")))?;
        let conditions = current
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let established = conditions.iter().any(|c| {
            c.type_ == "Established"
                && c.status == "True"
                && c.observed_generation.is_none_or(|g| g >= generation)
        });
        let mut observed = conditions
            .iter()
            .map(|c| {
                format!(
                    "{}={} ({}: {})",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        if established {
            match list_once(client, &crd).await {
                Ok(()) => return Ok(()),
                Err(e) => observed = format!("{observed}; listing its objects: {e}"),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("CRD {name} to be established and served"),
                after: CRD_TIMEOUT,
                observed,
                tail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn list_once(client: &Client, crd: &CustomResourceDefinition) -> Result<(), kube::Error> {
    let spec = &crd.spec;
    let version = spec
        .versions
        .iter()
        .find(|v| v.served)
        .map_or_else(String::new, |v| v.name.clone());
    let resource = ApiResource {
        group: spec.group.clone(),
        version: version.clone(),
        api_version: format!("{}/{version}", spec.group),
        kind: spec.names.kind.clone(),
        plural: spec.names.plural.clone(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    api.list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
}
