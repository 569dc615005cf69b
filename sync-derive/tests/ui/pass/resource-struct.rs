// A hand-written resource struct, as kopium generates it: `metadata`, `spec`, `status: Option<_>`.
use std::borrow::Cow;

use kube::Resource;
use kube::core::{NamespaceResourceScope, ObjectMeta};
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

#[derive(Syncable, Serialize, Deserialize, Clone, Debug)]
#[sync(remote_suffix = "-eu", secrets("queue-credentials"))]
pub struct Queue {
    pub metadata: ObjectMeta,
    pub spec: QueueSpec,
    pub status: std::option::Option<QueueStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct QueueSpec {
    pub depth: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct QueueStatus {
    pub length: u32,
}

/// Without a status: `Syncable::Status` is `()`; a field of its own is defaulted by `from_parts`.
#[derive(Syncable, Serialize, Deserialize, Clone, Debug)]
pub struct Topic {
    pub metadata: ObjectMeta,
    pub spec: QueueSpec,
    #[serde(skip)]
    pub cache: Vec<u8>,
}

macro_rules! resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                "acme.dev".into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
resource!(Queue, "Queue", "queues");
resource!(Topic, "Topic", "topics");

fn main() {
    let queue = Queue::from_parts(ObjectMeta::default(), QueueSpec { depth: 3 });
    assert!(queue.status().is_none());
    assert_eq!(Queue::defaults().controller_name, "queue-sync");

    let topic = Topic::from_parts(ObjectMeta::default(), QueueSpec { depth: 3 });
    let status: Option<&()> = topic.status();
    assert!(status.is_none() && topic.cache.is_empty());
}
