//! One kind of a manager: how it is set up ([`KindBuilder`]), and the kind, started, behind a
//! trait object, so that kinds of different types run side by side.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared as SharedFuture};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, PartialObjectMeta};
use tracing::info;

use super::pass::Elected;
use super::state::lock;
use super::watch_stream::Touched;
use super::{Inner, KindSetup, Shared, Transform};
use crate::config::SyncConfig;
use crate::dynamic::Dynamic;
use crate::error::ConfigError;
use crate::mapping::ObjectKey;
use crate::scheduler::Backoff;
use crate::syncable::{SyncObject, Syncable};

/// How one kind is synced within a [`SyncManager`]: its configuration, backoff, outcome
/// callback and spec transform. The manager hands one to each `add` closure.
#[must_use]
pub struct KindBuilder<K: SyncObject> {
    pub(super) setup: KindSetup<K>,
}

impl<K: SyncObject> KindBuilder<K> {
    pub(super) fn new(kind: K::Kind, config: SyncConfig) -> Self {
        KindBuilder {
            setup: KindSetup {
                kind,
                config,
                backoff: Backoff::default(),
                on_reconciled: None,
                transform: None,
            },
        }
    }

    /// Overrides configuration values, starting from the current ones:
    /// `.configure(|c| c.remote_suffix("-eu").concurrency(4))`.
    pub fn configure(mut self, f: impl FnOnce(SyncConfig) -> SyncConfig) -> Self {
        self.setup.config = f(self.setup.config);
        self
    }

    /// The configuration this kind will run with.
    pub fn config(&self) -> &SyncConfig {
        &self.setup.config
    }

    /// Backoff of failed keys (by default 0.5 s doubling up to 60 s, with jitter).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.setup.backoff = Backoff { initial, max };
        self
    }

    /// Calls `f` with how each reconcile pass of this kind ended; see
    /// [`SyncBuilder::on_reconciled`](crate::SyncBuilder::on_reconciled).
    pub fn on_reconciled(mut self, f: impl Fn(&crate::Reconciled) + Send + Sync + 'static) -> Self {
        self.setup.on_reconciled = Some(Arc::new(f));
        self
    }

    fn transform(mut self, f: Transform<K>) -> Self {
        self.setup.transform = Some(f);
        self
    }
}

impl<K: Syncable> KindBuilder<K> {
    /// Changes the remote spec on its way down, for this region only: a region override.
    ///
    /// `f` runs on every remote object read, before its spec is compared with the local copy,
    /// so the local copy holds the transformed spec and an idle object makes no writes. The
    /// remote object is never written with it. `f` must be deterministic (the same input gives
    /// the same output); one that is not makes a write on every pass.
    ///
    /// ```
    /// # use kube::CustomResource;
    /// # use schemars::JsonSchema;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
    /// # #[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced)]
    /// # pub struct DatabaseSpec { pub storage_class: String }
    /// # impl sync_core::Syncable for Database {
    /// #     type Spec = DatabaseSpec; type Status = ();
    /// #     fn defaults() -> sync_core::SyncConfig { sync_core::SyncConfig::new("database-sync") }
    /// #     fn spec(&self) -> &DatabaseSpec { &self.spec }
    /// #     fn spec_mut(&mut self) -> &mut DatabaseSpec { &mut self.spec }
    /// #     fn status(&self) -> Option<&()> { None }
    /// #     fn from_parts(metadata: kube::core::ObjectMeta, spec: DatabaseSpec) -> Self { Database { metadata, spec } }
    /// #     fn copy_spec(r: &DatabaseSpec, l: &mut DatabaseSpec) { l.clone_from(r) }
    /// #     fn new_local_spec(r: &DatabaseSpec) -> DatabaseSpec { r.clone() }
    /// # }
    /// # fn demo(remote: kube::Client, local: kube::Client) -> sync_core::SyncManager {
    /// use sync_core::{Local, Remote, SyncManager};
    /// SyncManager::new(Remote(remote), Local(local)).add::<Database>(|k| {
    ///     k.transform_spec(|spec| spec.storage_class = "eu-ssd".into())
    /// })
    /// # }
    /// ```
    pub fn transform_spec(self, f: impl Fn(&mut K::Spec) + Send + Sync + 'static) -> Self {
        self.transform(Arc::new(move |o: &mut K| f(o.spec_mut())))
    }
}

impl KindBuilder<Dynamic> {
    /// Changes the remote spec (as JSON) on its way down, for this region only; see
    /// [`KindBuilder::transform_spec`] for a Rust type.
    pub fn transform_json(
        self,
        f: impl Fn(&mut serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        self.transform(Arc::new(move |o: &mut Dynamic| f(o.spec_mut())))
    }
}

/// One kind, set up and type-erased until it starts.
pub(super) struct Added {
    pub(super) config: SyncConfig,
    pub(super) resource: ApiResource,
    pub(super) check: Result<(), ConfigError>,
    pub(super) start: Start,
}

/// Starts a kind's reconciler, given what the kinds share and the kind's resolved configuration.
type Start = Box<dyn FnOnce(&Shared, SyncConfig) -> Arc<dyn Running> + Send>;

impl<K: SyncObject> KindBuilder<K> {
    pub(super) fn erase(self, check: Result<(), ConfigError>) -> Added {
        let setup = self.setup;
        Added {
            config: setup.config.clone(),
            resource: K::api_resource(&setup.kind),
            check,
            start: Box::new(move |shared, config| {
                let running: Arc<dyn Running> = Inner::start(shared, KindSetup { config, ..setup });
                running
            }),
        }
    }
}

/// A started kind, whatever its type.
pub(super) trait Running: Send + Sync {
    fn caches_ready(&self) -> BoxFuture<'_, ()>;
    fn synced_onto_itself(&self) -> Option<ObjectKey>;
    fn namespace_touched(&self, touched: &Touched<PartialObjectMeta<Namespace>>);
    fn run_queue(
        self: Arc<Self>,
        elected: Option<Arc<Elected>>,
        shutdown: SharedFuture<BoxFuture<'static, ()>>,
    ) -> BoxFuture<'static, ()>;
    fn stop(&self);
}

impl<K: SyncObject> Running for Inner<K> {
    fn caches_ready(&self) -> BoxFuture<'_, ()> {
        self.wait_for_caches().boxed()
    }

    fn synced_onto_itself(&self) -> Option<ObjectKey> {
        Inner::synced_onto_itself(self)
    }

    fn namespace_touched(&self, touched: &Touched<PartialObjectMeta<Namespace>>) {
        Inner::namespace_touched(self, touched);
    }

    fn run_queue(
        self: Arc<Self>,
        elected: Option<Arc<Elected>>,
        shutdown: SharedFuture<BoxFuture<'static, ()>>,
    ) -> BoxFuture<'static, ()> {
        Inner::run_queue(self, elected, shutdown).boxed()
    }

    fn stop(&self) {
        if let Some(w) = lock(&self.watch).take() {
            w.abort();
        }
        info!(controller = %self.config.controller_name, "reconciler stopped");
    }
}
