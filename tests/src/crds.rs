//! Small custom resources for tests, so every test suite can reuse the same kinds.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sync_core::Syncable;

/// The spec of a [`Widget`]: a namespaced test kind in group `test.sync.dev`, version `v1`,
/// with a status subresource, synced by `#[derive(Syncable)]` with every default.
///
/// Install it with `install_crd(&client, Widget::crd())` (using [`kube::CustomResourceExt`]).
#[derive(
    CustomResource, Syncable, Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema,
)]
#[kube(
    group = "test.sync.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wdg",
    printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".spec.size"}"#
)]
pub struct WidgetSpec {
    /// Any number.
    pub size: i32,
    /// Any text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// The status of a [`Widget`], written through the `status` subresource.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// Any text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The spec generation the phase describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
