//! The `#[derive(Syncable)]` macro of `sync-core`. Use it through `sync-core`, which re-exports
//! it; the documentation is on the derive.

mod attr;
mod expand;
mod fallback;
mod validate;

use darling::FromDeriveInput;
use proc_macro::TokenStream;
use syn::DeriveInput;

/// Implements `sync_core::Syncable` for a Kubernetes kind: the spec copy functions, and the
/// configuration defaults from `#[sync(...)]`.
///
/// Put it on the spec struct next to kube's `#[derive(CustomResource)]` (in either order): the
/// trait is then implemented on the kind type that kube generates, found from
/// `#[kube(kind = "...", root = "...", status = "...")]`. Or put it on a whole resource struct,
/// written by hand or by kopium, with `metadata`, `spec` and, optionally, `status: Option<_>`
/// fields.
///
/// Every value that `#[sync(...)]` sets is a default: `Kind::defaults()` is a `SyncConfig`, and
/// its by-value builder overrides any of them at run time, such as a region suffix only known
/// at start-up. The reconciler, `Kind::reconciler(Remote(remote), Local(local))`, starts from these defaults;
/// its `configure` method takes the same builder.
///
/// # Example
///
/// ```
/// use kube::CustomResource;
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
/// use sync_core::{Propagation, Syncable};
///
/// #[derive(CustomResource, Syncable, Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// #[kube(group = "acme.dev", version = "v1", kind = "Database", namespaced, status = "DatabaseStatus")]
/// #[sync(remote_suffix = "-eu", namespace_prefix = "tenant-", secrets("db-credentials"), propagation = "background")]
/// pub struct DatabaseSpec {
///     pub size: String,
///     #[sync(skip)] // local-only: never copied from the remote object, never reverted
///     pub local_note: Option<String>,
/// }
///
/// #[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// pub struct DatabaseStatus {
///     pub ready: bool,
/// }
///
/// let config = Database::defaults();
/// // The default name is per region: the suffixes are appended when the reconciler starts.
/// assert_eq!(config.effective_controller_name(), "database-sync-eu");
/// assert_eq!(config.propagation, Propagation::Background);
///
/// // Every value can be overridden at run time.
/// let config = Database::defaults().remote_suffix("-us");
/// assert_eq!(config.remote_suffix, "-us");
///
/// let remote = DatabaseSpec { size: "10Gi".into(), local_note: Some("remote".into()) };
/// let mut local = DatabaseSpec { size: "1Gi".into(), local_note: Some("local".into()) };
/// Database::copy_spec(&remote, &mut local);
/// assert_eq!(local.size, "10Gi");
/// assert_eq!(local.local_note.as_deref(), Some("local"));
/// assert_eq!(Database::new_local_spec(&remote).local_note, None);
/// ```
///
/// # Attributes
///
/// The container attribute `#[sync(...)]` takes any of these keys; an absent key keeps the
/// default of `SyncConfig::new`. Names follow the rules of Kubernetes names, so a value that
/// could never form a valid name is a compile error.
///
/// ## `#[sync(remote_suffix = "...")]`
///
/// Remote object names must end with it, or the object is ignored; it is stripped to form the
/// local name, and appended to a local secret's name to form the remote secret's name.
/// Lowercase letters, digits and `-`, ending with a letter or digit, at most 62 characters.
/// Default: `""`.
///
/// ## `#[sync(remote_namespace_suffix = "...")]`
///
/// Remote namespaces must end with it, or the object is ignored; it is stripped to form the
/// local namespace. Same rules as `remote_suffix`. Default: `""`.
///
/// ## `#[sync(local_namespace_suffix = "...")]`
///
/// Appended to form the local namespace. Same rules as `remote_suffix`. Default: `""`.
///
/// ## `#[sync(namespace_prefix = "...")]`
///
/// Remote namespaces must start with it, or the object is ignored; it is kept in the local
/// namespace. Lowercase letters, digits and `-`, starting with a letter or digit; with either
/// namespace suffix, at most 63 characters. Default: `""`.
///
/// ## `#[sync(secrets("...", ...))]`
///
/// Names of local secrets sent up to the remote cluster. Each is a DNS-1123 subdomain, listed
/// once. Default: none.
///
/// ## `#[sync(propagation = "...")]`
///
/// Propagation policy used when the controller deletes a local resource: `"foreground"`,
/// `"background"` or `"orphan"`. Default: `"foreground"`.
///
/// ## `#[sync(on_remote_delete = "...")]`
///
/// What is deleted locally when the remote object goes away: `"namespace"`
/// (`OnRemoteDelete::Namespace`: the local namespace, if the controller created it and no synced
/// sibling lives there), `"resource"` (`OnRemoteDelete::NamespaceOrResource`: also the local
/// resource in a namespace the controller did not create) or `"orphan"`
/// (`OnRemoteDelete::Orphan`: nothing). Default: `"namespace"`.
///
/// ## `#[sync(concurrency = N)]`
///
/// How many objects may be reconciled in parallel; at least 1. Default:
/// `sync_core::DEFAULT_CONCURRENCY`.
///
/// ## `#[sync(status_observed_generation)]`
///
/// The status type carries `observedGeneration`, which the local controller sets: a new
/// object's claim then also records the generations of the copy about to be made, one remote
/// write fewer per new object (`SyncConfig::status_observed_generation` says when that is
/// safe). A kind without a status is refused. Default: off.
///
/// ## `#[sync(domain = "...")]`
///
/// Prefix of every annotation and finalizer the controller writes; a DNS-1123 subdomain.
/// Default: `"cloud.teleport.dev"`, the Go original's, so that an existing management plane
/// works unchanged.
///
/// ## `#[sync(controller_name = "...")]`
///
/// Name of the controller in events, field managers, metrics and logs, and in the claim it
/// writes on each remote object; a DNS-1123 subdomain of at most 53 characters (it forms the
/// annotation key `<domain>/needed-by.<name>`). The name is used exactly as given.
///
/// Default: per region (`SyncConfig::per_region`). The lowercase kind followed by `-sync`, such
/// as `"database-sync"`, and then, when the reconciler starts, each distinct region part of the
/// configuration it runs with (`remote_suffix`, then `remote_namespace_suffix`, each trimmed
/// of '-' and '.'): `remote_suffix = "-eu"` gives `"database-sync-eu"`, no suffix
/// leaves `"database-sync"`. Two regions whose suffixes overlap thus claim under different
/// names and see each other. The bare `<kind>-sync`, the default before per-region names, is
/// adopted automatically as a predecessor.
///
/// ## `#[sync(predecessors("...", ...))]`
///
/// Former names of this controller, whose claims it adopts
/// (`SyncConfig::adopt_claims_from`): their objects are synced as its own and their claims
/// rewritten, the terminating ones are released, and the namespaces they created or marked
/// count as its own. Each follows the rules of `controller_name`. Default: none.
///
/// ## `#[sync(crate = "...")]`
///
/// Path of the runtime crate in the generated code, for a crate that renames or re-exports
/// `sync_core`. Default: `"::sync_core"`.
///
/// ## `#[sync(skip)]` on a spec field
///
/// The field is local-only: it is never copied from the remote object and never reverted, and
/// a new local object gets its `Default::default()`, so its type must implement `Default`. It
/// applies to the fields of a spec struct next to `#[derive(CustomResource)]`; on a resource
/// struct, the whole spec is synced.
///
/// # Errors
///
/// Every malformed attribute is a compile error spanned on the offending key or value, and all
/// of them are reported at once: unknown keys (with a suggestion), names that could never be
/// valid, duplicate secrets, unknown `propagation` or `on_remote_delete` values,
/// `concurrency = 0`, `skip` on a type without `Default`, and an input with no kind type.
///
/// # Generated code
///
/// For the example above, roughly:
///
/// ```text
/// const _: () = {
///     #[automatically_derived]
///     impl ::sync_core::__private::Syncable for Database {
///         type Spec = DatabaseSpec;
///         type Status = DatabaseStatus; // `()` without `#[kube(status = "...")]`
///
///         fn defaults() -> SyncConfig {
///             // `SyncConfig::new("...")` with `controller_name = "..."`.
///             SyncConfig::per_region("database-sync")
///                 .remote_suffix("-eu")
///                 .namespace_prefix("tenant-")
///                 .secrets(["db-credentials"])
///                 .propagation(Propagation::Background)
///         }
///
///         fn spec(&self) -> &Self::Spec { &self.spec }
///         fn spec_mut(&mut self) -> &mut Self::Spec { &mut self.spec }
///         fn status(&self) -> Option<&Self::Status> { self.status.as_ref() }
///         fn from_parts(metadata: ObjectMeta, spec: Self::Spec) -> Self {
///             Self { metadata, spec, status: None }
///         }
///
///         // One `clone_from` per synced field; with no skipped field, the spec is cloned whole.
///         fn copy_spec(remote: &Self::Spec, local: &mut Self::Spec) {
///             Clone::clone_from(&mut local.size, &remote.size);
///         }
///         fn new_local_spec(remote: &Self::Spec) -> Self::Spec {
///             DatabaseSpec {
///                 size: Clone::clone(&remote.size),
///                 local_note: <Option<String> as Default>::default(),
///             }
///         }
///     }
/// };
/// ```
///
/// Every path in it goes through `::sync_core::__private` (or the `crate` attribute's path),
/// so it compiles in a module that shadows `Option`, `Default` or `std`.
#[proc_macro_derive(Syncable, attributes(sync))]
pub fn derive_syncable(input: TokenStream) -> TokenStream {
    derive(&syn::parse_macro_input!(input as DeriveInput)).into()
}

/// Parse, validate, expand, or fall back.
fn derive(input: &DeriveInput) -> proc_macro2::TokenStream {
    attr::Input::from_derive_input(input)
        .and_then(validate::validate)
        .map(|model| expand::expand(&model))
        .unwrap_or_else(|errors| fallback::fallback(input, errors))
}

#[cfg(test)]
mod tests {
    use darling::FromDeriveInput;

    use crate::{attr, validate};

    /// Whether the derive accepts `#[sync(<key> = "<value>")]` (a list for `secrets` and
    /// `predecessors`).
    fn accepts(key: &str, value: &str) -> bool {
        let attr = match key {
            "secrets" | "predecessors" => format!("{key}({value:?})"),
            _ => format!("{key} = {value:?}"),
        };
        let source = format!(
            "#[kube(group = \"acme.dev\", version = \"v1\", kind = \"Database\", namespaced)]\n\
             #[sync({attr})]\n\
             pub struct DatabaseSpec {{ pub size: String }}"
        );
        let input: syn::DeriveInput = syn::parse_str(&source).expect("the case parses");
        attr::Input::from_derive_input(&input)
            .and_then(validate::validate)
            .is_ok()
    }

    /// The table `sync-core`'s tests run against `SyncConfig` at run time: the derive accepts
    /// exactly the values the runtime accepts.
    #[test]
    fn the_derive_accepts_exactly_the_values_the_runtime_accepts() {
        for case in sync_names::cases::all() {
            assert_eq!(accepts(case.key, &case.value), case.valid, "{case:?}");
        }
    }
}
