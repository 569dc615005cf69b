//! The executor: one step becomes one model API call, and its result an [`Answer`], as the
//! runtime's executor does with the real API servers.

use std::collections::BTreeMap;

use sync_core::plan::{Answer, NamespaceState, Step};
use sync_core::{ObjectKey, Propagation};

use crate::cluster::{ApiError, Cluster};
use crate::controller::Setup;
use crate::kind::{Thing, ThingStatus};

/// Which cluster a step writes to, and what it writes, for the write budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The local object.
    Local,
    /// The remote status.
    Status,
    /// The remote object's metadata.
    RemoteMeta,
    /// The local namespace.
    Namespace,
}

/// What a write step writes to.
pub fn target(step: &Step<Thing>) -> Target {
    match step {
        Step::CreateLocal { .. } | Step::UpdateLocal { .. } | Step::DeleteLocal(_) => Target::Local,
        Step::PatchRemoteStatus(_) => Target::Status,
        Step::PatchRemote(_) | Step::ReleaseFinalizer(_) | Step::PushSecret { .. } => {
            Target::RemoteMeta
        }
        _ => Target::Namespace,
    }
}

/// Executes a write step against the model clusters.
pub fn execute(
    remote: &mut Cluster,
    local: &mut Cluster,
    setup: &Setup,
    (key, local_key): (&ObjectKey, &ObjectKey),
    step: &Step<Thing>,
) -> Result<Answer<Thing>, ApiError> {
    let kind = setup.kind;
    let keys = &setup.keys;
    let ns = local_key.namespace.as_str();
    let me = setup.name().to_owned();
    let namespace =
        |m: kube::core::ObjectMeta| Answer::Namespace(NamespaceState::from_meta(&m, keys));
    Ok(match step {
        Step::CreateNamespace => {
            let annotations = BTreeMap::from([
                (keys.namespace_owner.clone(), local_key.name.clone()),
                (keys.namespace_creator.clone(), me),
            ]);
            namespace(local.create_ns(ns, annotations)?)
        }
        Step::MarkNamespace => namespace(local.patch_ns(ns, |a| {
            a.insert(keys.needed_by(&me), "true".into());
        })?),
        Step::UnmarkNamespace(names) => namespace(local.patch_ns(ns, |a| {
            for name in names {
                a.remove(&keys.needed_by(name));
            }
        })?),
        Step::DeleteNamespace {
            uid,
            resource_version,
        } => namespace(local.delete_ns(ns, uid.as_deref(), resource_version.as_deref())?),
        Step::CreateLocal { object, .. } => Answer::Object(local.create(kind, (**object).clone())?),
        Step::UpdateLocal { object, .. } => Answer::Object(local.replace(kind, object, true)?),
        Step::DeleteLocal(p) => {
            match local.delete(kind, local_key, *p == Propagation::Foreground) {
                Ok(Some(o)) => Answer::Object(o),
                Ok(None) | Err(ApiError::NotFound) => Answer::Gone,
                Err(e) => return Err(e),
            }
        }
        Step::PatchRemote(p) | Step::ReleaseFinalizer(p) => {
            let rv = Some(p.resource_version.as_str()).filter(|s| !s.is_empty());
            Answer::Object(remote.patch_meta(kind, key, rv, |m| p.apply_to(m))?)
        }
        Step::PatchRemoteStatus(v) => {
            let status: ThingStatus =
                serde_json::from_value(v.clone()).expect("a status the plan sent");
            Answer::Object(remote.patch_status(kind, key, Some(status))?)
        }
        Step::PushSecret { .. } => unreachable!("the simulation configures no secrets"),
        Step::InSync | Step::Paused | Step::Wait(_) | Step::ClaimedElsewhere(_) => Answer::Done,
    })
}

/// A one-line account of a step for the trace.
pub fn describe(step: &Step<Thing>) -> String {
    match step {
        Step::CreateLocal { object, spec_of } => {
            format!("CreateLocal(spec {:?}, gen {spec_of:?})", object.spec.size)
        }
        Step::UpdateLocal { object, spec_of } => {
            let labels = object.metadata.labels.clone().unwrap_or_default();
            format!(
                "UpdateLocal(spec {:?}, gen {spec_of:?}, labels {labels:?})",
                object.spec.size
            )
        }
        Step::PatchRemote(p) => format!(
            "PatchRemote(rv {}, fin {:?}, {:?})",
            p.resource_version,
            p.finalizers,
            short(&p.annotations)
        ),
        Step::ReleaseFinalizer(p) => format!(
            "ReleaseFinalizer(rv {}, {:?})",
            p.resource_version, p.finalizers
        ),
        Step::PatchRemoteStatus(v) => format!("PatchRemoteStatus({v})"),
        Step::DeleteNamespace {
            uid,
            resource_version,
        } => format!("DeleteNamespace({uid:?}, rv {resource_version:?})"),
        Step::Wait(wait) => format!("Wait({})", wait.why()),
        other => format!("{other:?}"),
    }
}

/// A one-line account of an answer for the trace.
pub fn describe_answer(answer: &Answer<Thing>) -> String {
    match answer {
        Answer::Object(o) => {
            let m = &o.metadata;
            format!(
                "object rv {} gen {:?} spec {:?} status {:?}{}",
                m.resource_version.as_deref().unwrap_or("-"),
                m.generation,
                o.spec.size,
                o.status
                    .as_ref()
                    .map(|s| (s.ready, s.observed_generation, s.detail.is_some())),
                if m.deletion_timestamp.is_some() {
                    " terminating"
                } else {
                    ""
                }
            )
        }
        Answer::Namespace(n) => format!(
            "namespace rv {:?} terminating {}",
            n.resource_version, n.terminating
        ),
        Answer::Unreadable(m) => format!(
            "unreadable object rv {}",
            m.resource_version.as_deref().unwrap_or("-")
        ),
        Answer::Gone => "gone".into(),
        Answer::Done => "done".into(),
    }
}

fn short(a: &BTreeMap<String, Option<String>>) -> BTreeMap<&str, Option<&str>> {
    a.iter()
        .map(|(k, v)| (k.rsplit('/').next().unwrap_or(k), v.as_deref()))
        .collect()
}
