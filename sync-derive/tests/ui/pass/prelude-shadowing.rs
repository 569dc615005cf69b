// The generated code compiles in a module that shadows the prelude and `std`.
#![allow(dead_code, non_camel_case_types)]

/// Everything shadowed, on a hand-written resource struct.
mod resource {
    type Result = ();
    type Option = ();
    type Some = ();
    type None = ();
    type Default = ();
    type Clone = ();
    type String = ();
    type Vec = ();
    type Box = ();
    type ObjectMeta = ();
    type SyncConfig = ();
    type Syncable = ();
    mod std {}
    mod core {}
    mod alloc {}

    #[derive(
        ::sync_core::Syncable,
        ::serde::Serialize,
        ::serde::Deserialize,
        ::core::clone::Clone,
        ::core::fmt::Debug,
    )]
    #[sync(
        remote_suffix = "-eu",
        secrets("queue-credentials"),
        propagation = "orphan",
        concurrency = 2
    )]
    pub struct Queue {
        pub metadata: ::kube::core::ObjectMeta,
        pub spec: super::QueueSpec,
        pub status: ::core::option::Option<super::QueueStatus>,
        pub extra: ::std::vec::Vec<u8>,
    }

    impl ::kube::Resource for Queue {
        type DynamicType = ();
        type Scope = ::kube::core::NamespaceResourceScope;

        fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
            "Queue".into()
        }
        fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
            "acme.dev".into()
        }
        fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
            "v1".into()
        }
        fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
            "queues".into()
        }
        fn meta(&self) -> &::kube::core::ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut ::kube::core::ObjectMeta {
            &mut self.metadata
        }
    }
}

/// Next to `CustomResource`, which needs `Option`, `Default` and `std` itself: everything else.
mod custom_resource {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    type Result = ();
    type Clone = ();
    type Vec = ();
    type Box = ();
    type Some = ();
    type None = ();
    type SyncConfig = ();
    type Syncable = ();
    type Propagation = ();
    mod core {}
    mod alloc {}

    #[derive(
        CustomResource,
        ::sync_core::Syncable,
        Serialize,
        Deserialize,
        ::std::clone::Clone,
        Debug,
        JsonSchema,
    )]
    #[kube(
        group = "acme.dev",
        version = "v1",
        kind = "Database",
        namespaced,
        status = "DatabaseStatus"
    )]
    #[sync(remote_suffix = "-eu", propagation = "background")]
    pub struct DatabaseSpec {
        pub size: u32,
        #[sync(skip)]
        pub replicas: u32,
    }

    #[derive(Serialize, Deserialize, ::std::clone::Clone, Debug, JsonSchema)]
    pub struct DatabaseStatus {
        pub ready: bool,
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct QueueSpec {
    pub depth: u32,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct QueueStatus {
    pub length: u32,
}

fn main() {
    use sync_core::Syncable;
    assert_eq!(resource::Queue::defaults().concurrency, 2);
    assert_eq!(custom_resource::Database::defaults().remote_suffix, "-eu");
}
