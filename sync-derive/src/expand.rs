//! Code generation: `impl Syncable for Kind` from a checked [`Model`].
//!
//! The generated code names everything through `#krate::__private`, so that it compiles whatever
//! the user's module shadows (`Result`, `Option`, `Default`, ...) and whatever the runtime crate
//! is called.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{OnRemoteDelete, Propagation};
use crate::validate::{Config, ControllerName, Model, SpecCopy};

/// `impl Syncable for Kind`, in an anonymous const.
pub fn expand(model: &Model) -> TokenStream {
    let Model {
        krate,
        kind,
        copy,
        config,
    } = model;
    let private = quote!(#krate::__private);
    let ident = &kind.ident;
    let spec = &kind.spec;
    let defaults = defaults(&private, config);
    let (copy_spec, new_local_spec) = copy_functions(&private, copy);

    let (status, status_fn, status_init) = match &kind.status {
        Some(status) => (
            quote!(#status),
            quote!(self.status.as_ref()),
            quote!(status: #private::Option::None,),
        ),
        None => (quote!(()), quote!(#private::Option::None), quote!()),
    };
    // A hand-written resource struct may have fields of its own; a new object gets their default.
    let other_inits = kind.other_fields.iter().map(
        |(field, ty)| quote_spanned!(ty.span()=> #field: <#ty as #private::Default>::default(),),
    );

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #private::Syncable for #ident {
                type Spec = #spec;
                type Status = #status;

                fn defaults() -> #private::SyncConfig {
                    #defaults
                }

                fn spec(&self) -> &Self::Spec {
                    &self.spec
                }

                fn spec_mut(&mut self) -> &mut Self::Spec {
                    &mut self.spec
                }

                fn status(&self) -> #private::Option<&Self::Status> {
                    #status_fn
                }

                fn from_parts(metadata: #private::ObjectMeta, spec: Self::Spec) -> Self {
                    Self { metadata, spec, #status_init #(#other_inits)* }
                }

                #copy_spec

                #new_local_spec
            }
        };
    }
}

/// `SyncConfig::new(controller_name)` (or `SyncConfig::per_region(<kind>-sync)` without one),
/// then a builder call per attribute given.
fn defaults(private: &TokenStream, config: &Config) -> TokenStream {
    let Config {
        controller_name,
        predecessors,
        remote_suffix,
        remote_namespace_suffix,
        local_namespace_suffix,
        namespace_prefix,
        secrets,
        propagation,
        on_remote_delete,
        concurrency,
        domain,
        status_observed_generation,
    } = config;

    let string_calls = [
        ("remote_suffix", remote_suffix),
        ("remote_namespace_suffix", remote_namespace_suffix),
        ("local_namespace_suffix", local_namespace_suffix),
        ("namespace_prefix", namespace_prefix),
        ("domain", domain),
    ];
    let string_calls = string_calls.into_iter().filter_map(|(method, value)| {
        let method = syn::Ident::new(method, proc_macro2::Span::call_site());
        value.as_ref().map(|value| quote!(.#method(#value)))
    });
    let secrets = (!secrets.is_empty()).then(|| quote!(.secrets([#(#secrets),*])));
    let propagation = propagation.map(|p| {
        let variant = match p {
            Propagation::Foreground => quote!(Foreground),
            Propagation::Background => quote!(Background),
            Propagation::Orphan => quote!(Orphan),
        };
        quote!(.propagation(#private::Propagation::#variant))
    });
    let on_remote_delete = on_remote_delete.map(|o| {
        let variant = match o {
            OnRemoteDelete::Namespace => quote!(Namespace),
            OnRemoteDelete::NamespaceOrResource => quote!(NamespaceOrResource),
            OnRemoteDelete::Orphan => quote!(Orphan),
        };
        quote!(.on_remote_delete(#private::OnRemoteDelete::#variant))
    });
    let concurrency = concurrency.map(|n| {
        let n = Literal::usize_unsuffixed(n);
        quote!(.concurrency(#n))
    });

    let observed_generation =
        status_observed_generation.then(|| quote!(.status_observed_generation(true)));
    let new = match controller_name {
        ControllerName::Given(name) => quote!(#private::SyncConfig::new(#name)),
        ControllerName::PerRegion(base) => quote!(#private::SyncConfig::per_region(#base)),
    };
    let predecessors =
        (!predecessors.is_empty()).then(|| quote!(.adopt_claims_from([#(#predecessors),*])));
    quote! {
        #new
            #predecessors
            #(#string_calls)*
            #secrets
            #propagation
            #on_remote_delete
            #concurrency
            #observed_generation
    }
}

/// `copy_spec` and `new_local_spec`.
fn copy_functions(private: &TokenStream, copy: &SpecCopy) -> (TokenStream, TokenStream) {
    let SpecCopy::Fields { spec, fields } = copy else {
        return (
            quote! {
                fn copy_spec(remote: &Self::Spec, local: &mut Self::Spec) {
                    #private::Clone::clone_from(local, remote);
                }
            },
            quote! {
                fn new_local_spec(remote: &Self::Spec) -> Self::Spec {
                    #private::Clone::clone(remote)
                }
            },
        );
    };

    let synced: Vec<_> = fields
        .iter()
        .filter(|f| !f.skip)
        .map(|f| &f.ident)
        .collect();
    // With every field skipped, `remote` and `local` would be unused.
    let (remote, local) = if synced.is_empty() {
        (quote!(_), quote!(_))
    } else {
        (quote!(remote), quote!(local))
    };
    // A skipped field's type must implement `Default`; the call is spanned on the type so that
    // rustc's error points at the field.
    let inits = fields.iter().map(|field| {
        let (ident, ty) = (&field.ident, &field.ty);
        if field.skip {
            quote_spanned!(ty.span()=> #ident: <#ty as #private::Default>::default(),)
        } else {
            quote!(#ident: #private::Clone::clone(&remote.#ident),)
        }
    });

    (
        quote! {
            fn copy_spec(#remote: &Self::Spec, #local: &mut Self::Spec) {
                #(#private::Clone::clone_from(&mut local.#synced, &remote.#synced);)*
            }
        },
        quote! {
            fn new_local_spec(#remote: &Self::Spec) -> Self::Spec {
                #spec { #(#inits)* }
            }
        },
    )
}
