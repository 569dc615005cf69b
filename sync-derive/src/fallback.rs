//! What the derive emits when the input is wrong: the errors, and a stub impl.
//!
//! Without the stub, every use of the kind as a `Syncable` (`Database::defaults()`, the
//! reconciler) would add a "trait not implemented" error to the ones that say what is wrong.
//! The stub has every default and copies the spec whole, so it adds no error of its own; it
//! never runs, because the errors stop the build.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, parse_quote};

use crate::attr::{Fields, KubeAttrs, lenient_crate};
use crate::expand::expand;
use crate::validate::{Model, check_kind};

/// The errors, and a stub impl when the kind type can still be found.
pub fn fallback(input: &DeriveInput, errors: darling::Error) -> TokenStream {
    let errors = errors.write_errors();
    let stub = stub(input).map(|model| expand(&model));
    quote!(#errors #stub)
}

/// The stub's model, read leniently: only what finds the kind type, and the crate path.
fn stub(input: &DeriveInput) -> Option<Model> {
    if !input.generics.params.is_empty() {
        return None;
    }
    let fields = Fields::lenient(&input.data)?;
    let kind = check_kind(&input.ident, &KubeAttrs::from_attrs(&input.attrs), &fields).ok()?;
    let krate = match lenient_crate(&input.attrs) {
        Some(krate) => krate.ok()?,
        None => parse_quote!(::sync_core),
    };
    Some(Model::stub(krate, kind))
}
