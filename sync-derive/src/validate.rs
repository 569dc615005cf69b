//! The rules a `#[derive(Syncable)]` input follows, one `check_*` function each, and the checked
//! [`Model`] that `expand` generates code from.
//!
//! Rules on one value run while darling reads it (`attr` calls them), so their errors come in
//! the same compile as darling's own. Rules across values run in [`validate`], once every
//! attribute has been read. Each error is spanned on the value that breaks the rule.

use std::collections::HashSet;
use std::fmt::Display;

use darling::Error;
use proc_macro2::Span;
use syn::{
    Data, DataStruct, FieldsNamed, GenericArgument, Generics, Ident, LitInt, LitStr, Path,
    PathArguments, Type, parse_quote,
};

use sync_names::Part;

use crate::attr::{Fields, Input, KubeAttrs, OnRemoteDelete, Propagation};

/// A checked input: everything `expand` needs.
pub struct Model {
    /// Path of the runtime crate, `::sync_core` unless `#[sync(crate = "...")]`.
    pub krate: Path,
    pub kind: Kind,
    pub copy: SpecCopy,
    pub config: Config,
}

/// The type that implements `Syncable`, and where its parts are.
pub struct Kind {
    /// Its name.
    pub ident: Ident,
    /// Its Kubernetes kind, from which the default controller name comes.
    pub name: String,
    pub spec: Type,
    /// `None`: the kind has no status, so `Syncable::Status` is `()`.
    pub status: Option<Type>,
    /// Fields of a hand-written resource struct other than `metadata`, `spec` and `status`.
    pub other_fields: Vec<(Ident, Type)>,
    pub source: Source,
}

/// Where the kind type comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The input is a spec struct, and kube's `#[derive(CustomResource)]` generates the kind.
    CustomResource,
    /// The input is the whole resource struct.
    Resource,
}

/// How the spec is copied from a remote object to a local one.
pub enum SpecCopy {
    /// Every field is synced: the spec is cloned whole.
    Whole,
    /// Some fields are `#[sync(skip)]`: the spec struct is copied field by field.
    Fields { spec: Ident, fields: Vec<SpecField> },
}

/// A field of the spec struct.
pub struct SpecField {
    pub ident: Ident,
    pub ty: Type,
    pub skip: bool,
}

/// How the controller name is chosen.
pub enum ControllerName {
    /// `#[sync(controller_name = "...")]`: exactly this name.
    Given(LitStr),
    /// No `controller_name`: the per-region default, formed at run time from this base
    /// (`<kind>-sync`) and the suffixes.
    PerRegion(String),
}

/// The configuration values that `#[sync(...)]` sets; `None` keeps `SyncConfig::new`'s.
pub struct Config {
    pub controller_name: ControllerName,
    pub predecessors: Vec<LitStr>,
    pub remote_suffix: Option<LitStr>,
    pub remote_namespace_suffix: Option<LitStr>,
    pub local_namespace_suffix: Option<LitStr>,
    pub namespace_prefix: Option<LitStr>,
    pub secrets: Vec<LitStr>,
    pub propagation: Option<Propagation>,
    pub on_remote_delete: Option<OnRemoteDelete>,
    pub concurrency: Option<usize>,
    pub domain: Option<LitStr>,
    pub status_observed_generation: bool,
}

impl Model {
    /// The model of a stub impl: this kind, every default, the spec cloned whole.
    pub fn stub(krate: Path, kind: Kind) -> Self {
        let config = Config::defaults(&kind);
        Model {
            krate,
            kind,
            copy: SpecCopy::Whole,
            config,
        }
    }
}

impl Config {
    fn defaults(kind: &Kind) -> Self {
        Config {
            controller_name: ControllerName::PerRegion(default_base(kind)),
            predecessors: Vec::new(),
            remote_suffix: None,
            remote_namespace_suffix: None,
            local_namespace_suffix: None,
            namespace_prefix: None,
            secrets: Vec::new(),
            propagation: None,
            on_remote_delete: None,
            concurrency: None,
            domain: None,
            status_observed_generation: false,
        }
    }
}

/// Applies the rules across values, and builds the model.
pub fn validate(input: Input) -> darling::Result<Model> {
    let mut errors = Error::accumulator();
    let suffix = |s: &Option<crate::attr::Suffix>| s.as_ref().map(|s| s.0.clone());
    let remote_suffix = suffix(&input.remote_suffix);
    let remote_namespace_suffix = suffix(&input.remote_namespace_suffix);
    let local_namespace_suffix = suffix(&input.local_namespace_suffix);
    let namespace_prefix = input.namespace_prefix.map(|p| p.0);
    let secrets = input.secrets.map(|s| s.0).unwrap_or_default();
    let predecessors = input.predecessors.map(|s| s.0).unwrap_or_default();

    errors.handle(check_no_generics(&input.generics));
    let kind = errors.handle(check_kind(&input.ident, &input.attrs, &input.data));
    if let Some(kind) = &kind {
        errors.handle(check_skip_on_spec(kind, &input.data));
        if input.controller_name.is_none() {
            errors.handle(check_default_name(kind, input.ident.span()));
        }
        errors.handle(check_observed_generation(
            kind,
            &input.status_observed_generation,
        ));
    }
    let namespace_suffixes = [
        (Part::RemoteNamespaceSuffix, &remote_namespace_suffix),
        (Part::LocalNamespaceSuffix, &local_namespace_suffix),
    ];
    errors.handle(check_namespace_room(
        namespace_prefix.as_ref(),
        &namespace_suffixes,
    ));
    errors.handle(check_remote_secret_names(&secrets, remote_suffix.as_ref()));
    errors.finish()?;
    let Some(kind) = kind else {
        return Err(Error::custom(
            "internal error: no kind type, and no error saying why",
        ));
    };

    let copy = spec_copy(&kind, input.ident, input.data);
    let config = Config {
        controller_name: match input.controller_name {
            Some(name) => ControllerName::Given(name.0),
            None => ControllerName::PerRegion(default_base(&kind)),
        },
        predecessors,
        remote_suffix,
        remote_namespace_suffix,
        local_namespace_suffix,
        namespace_prefix,
        secrets,
        propagation: input.propagation,
        on_remote_delete: input.on_remote_delete,
        concurrency: input.concurrency.map(|c| c.0),
        domain: input.domain.map(|d| d.0),
        status_observed_generation: input.status_observed_generation.is_present(),
    };
    let krate = input.krate.unwrap_or_else(|| parse_quote!(::sync_core));
    Ok(Model {
        krate,
        kind,
        copy,
        config,
    })
}

/// Field by field when some field of the spec struct `spec` is local-only, whole otherwise.
fn spec_copy(kind: &Kind, spec: Ident, fields: Fields) -> SpecCopy {
    let skips = fields.0.iter().any(|f| f.skip.is_present());
    if kind.source == Source::Resource || !skips {
        return SpecCopy::Whole;
    }
    let fields = fields.0.into_iter().filter_map(|f| {
        let skip = f.skip.is_present();
        Some(SpecField {
            ident: f.ident?,
            ty: f.ty,
            skip,
        })
    });
    SpecCopy::Fields {
        spec,
        fields: fields.collect(),
    }
}

// ---- Rules on one value ----------------------------------------------------------------------

/// `#[derive(Syncable)]` needs a struct with named fields.
pub fn check_shape(data: &Data) -> darling::Result<&FieldsNamed> {
    // The copy functions name the spec struct's fields, and a resource struct is found by its
    // `metadata` and `spec` fields: both need named fields.
    let unsupported = |what: &str, span: Span| {
        error_at(
            span,
            format!(
                "`#[derive(Syncable)]` does not support {what}: it goes on a spec struct next to \
                 `#[derive(CustomResource)]`, or on a resource struct with `metadata` and `spec` fields"
            ),
        )
    };
    match data {
        Data::Struct(DataStruct {
            fields: syn::Fields::Named(named),
            ..
        }) => Ok(named),
        Data::Struct(DataStruct {
            fields: syn::Fields::Unnamed(fields),
            ..
        }) => Err(unsupported("tuple structs", fields.paren_token.span.join())),
        Data::Struct(data) => Err(unsupported("unit structs", data.struct_token.span)),
        Data::Enum(data) => Err(unsupported("enums", data.enum_token.span)),
        Data::Union(data) => Err(unsupported("unions", data.union_token.span)),
    }
}

/// `remote_suffix`, `remote_namespace_suffix`, `local_namespace_suffix` and `namespace_prefix`.
pub fn check_part(part: Part, value: &LitStr) -> darling::Result<()> {
    // A suffix ends, and the prefix starts, every mapped name or namespace: a value that can
    // never form a Kubernetes name would sync nothing. The rule is shared with the runtime
    // (`sync_names::check_part` says it in full), so an override at run time agrees.
    sync_names::check_part(part, &value.value()).map_err(|p| spanned(p, value))
}

/// One name in `secrets(...)`.
pub fn check_secret_name(name: &LitStr) -> darling::Result<()> {
    // A configured name that is not a secret name could never match a local secret, and the
    // secret would silently never be sent up.
    sync_names::check_secret_name(&name.value()).map_err(|p| spanned(p, name))
}

/// The names in `secrets(...)`, together.
pub fn check_unique_secrets(names: &[LitStr]) -> darling::Result<()> {
    // A name listed twice is a typo for another secret, most likely: that one would never be
    // sent up.
    let mut errors = Error::accumulator();
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name.value()) {
            errors.push(
                Error::custom(format!(
                    "secret {:?} is listed twice in `secrets(...)`",
                    name.value()
                ))
                .with_span(name),
            );
        }
    }
    errors.finish()
}

/// `propagation` and `on_remote_delete`: one of a few words.
pub fn check_choice<T: Copy>(
    key: &str,
    value: &LitStr,
    choices: &[(&str, T)],
) -> darling::Result<T> {
    // These choose what gets deleted; a word the controller would have to guess about must not
    // compile.
    let s = value.value();
    if let Some((_, choice)) = choices.iter().find(|(word, _)| *word == s) {
        return Ok(*choice);
    }
    let words: Vec<String> = choices
        .iter()
        .map(|(word, _)| format!("{word:?}"))
        .collect();
    let suggestion = match choices
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(&s))
    {
        Some((word, _)) => format!("; did you mean {word:?}?"),
        None => String::new(),
    };
    let words = words.join(", ");
    Err(Error::custom(format!("`{key}` must be one of {words}{suggestion}")).with_span(value))
}

/// `concurrency`.
pub fn check_concurrency(value: &LitInt) -> darling::Result<usize> {
    // Concurrency is how many objects are reconciled at once: with 0, none ever would be.
    match value.base10_parse::<usize>() {
        Ok(0) => Err(Error::custom(
            "`concurrency` must be at least 1, or no object would ever be reconciled",
        )
        .with_span(value)),
        Ok(n) => Ok(n),
        Err(_) => Err(Error::custom("`concurrency` must fit in a `usize`").with_span(value)),
    }
}

/// `domain`.
pub fn check_domain(value: &LitStr) -> darling::Result<()> {
    // The domain prefixes every annotation and finalizer key: the API server rejects a key
    // whose prefix is not a DNS-1123 subdomain, so every write would fail.
    sync_names::check_domain(&value.value()).map_err(|p| spanned(p, value))
}

/// `controller_name`, or one name in `predecessors(...)`.
pub fn check_controller_name(key: &str, value: &LitStr) -> darling::Result<()> {
    // The name is the field manager, the events' reporting controller, the claim and part of
    // the `needed-by.<name>` annotation key: the runtime refuses a name that cannot be all of
    // these, so the derive must too.
    sync_names::check_controller_name(key, &value.value()).map_err(|p| spanned(p, value))
}

/// The default controller name `<kind>-sync`.
fn check_default_name(kind: &Kind, span: Span) -> darling::Result<()> {
    // Without `controller_name`, the name is formed from the kind at run time: a kind whose
    // lowercase name cannot form one must say so now, not when the controller starts.
    let base = default_base(kind);
    sync_names::check_controller_name("controller_name", &base).map_err(|p| {
        error_at(
            span,
            format!(
                "the default controller name {base:?} (from the kind) is not valid ({p}); set \
                 `#[sync(controller_name = \"...\")]`"
            ),
        )
    })
}

/// The base of the default controller name: the lowercase kind followed by `-sync`.
pub fn default_base(kind: &Kind) -> String {
    format!("{}-sync", kind.name.to_lowercase())
}

// ---- Rules across values ---------------------------------------------------------------------

/// `status_observed_generation` says the status carries `observedGeneration`: a kind without a
/// status has none.
fn check_observed_generation(kind: &Kind, flag: &darling::util::Flag) -> darling::Result<()> {
    if flag.is_present() && kind.status.is_none() {
        return Err(error_at(
            flag.span(),
            "`status_observed_generation` says the status carries `observedGeneration`, but this \
             kind has no status (`#[kube(status = \"...\")]`)",
        ));
    }
    Ok(())
}

/// Finds the type that implements `Syncable`.
pub fn check_kind(ident: &Ident, kube: &KubeAttrs, fields: &Fields) -> darling::Result<Kind> {
    // The trait is implemented on the kind type. Next to `#[derive(CustomResource)]` that type is
    // generated by kube, and only `#[kube(...)]` says what it is called and whether it has a
    // status; otherwise the input must be the resource struct itself.
    if let Some(span) = kube.span {
        let Some(kind) = &kube.kind else {
            return Err(error_at(
                span,
                "`#[kube(...)]` has no `kind = \"...\"`, so the kind type is unknown",
            ));
        };
        let (key, name) = match &kube.root {
            Some(root) => ("root", root),
            None => ("kind", kind),
        };
        let root = name.parse::<Ident>().map_err(|_| {
            Error::custom(format!("`#[kube({key} = ...)]` must be a Rust type name"))
                .with_span(name)
        })?;
        let status = match &kube.status {
            Some(status) => Some(status.parse::<Type>().map_err(|_| {
                Error::custom("`#[kube(status = ...)]` must be a Rust type").with_span(status)
            })?),
            None => None,
        };
        return Ok(Kind {
            ident: root,
            name: kind.value(),
            spec: parse_quote!(#ident),
            status,
            other_fields: Vec::new(),
            source: Source::CustomResource,
        });
    }

    let (Some(_), Some(spec)) = (fields.get("metadata"), fields.get("spec")) else {
        return Err(Error::custom(format!(
            "cannot find the kind type of `{ident}`: derive `Syncable` next to \
             `#[derive(CustomResource)]` and `#[kube(kind = \"...\")]`, or on a resource struct \
             with `metadata` and `spec` fields"
        ))
        .with_span(ident));
    };
    let status = fields
        .get("status")
        .map(|f| check_status_type(&f.ty))
        .transpose()?;
    let other_fields = fields
        .0
        .iter()
        .filter_map(|f| Some((f.ident.clone()?, f.ty.clone())))
        .filter(|(i, _)| i != "metadata" && i != "spec" && i != "status")
        .collect();
    Ok(Kind {
        ident: ident.clone(),
        name: ident.to_string(),
        spec: spec.ty.clone(),
        status,
        other_fields,
        source: Source::Resource,
    })
}

/// The `status` field of a resource struct.
fn check_status_type(ty: &Type) -> darling::Result<Type> {
    // A new local object has no status yet, and the remote status is only written from a local
    // one that exists: the field must be able to say "none".
    if let Type::Path(path) = ty
        && path.qself.is_none()
        && let Some(last) = path.path.segments.last()
        && last.ident == "Option"
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && args.args.len() == 1
        && let Some(GenericArgument::Type(inner)) = args.args.first()
    {
        return Ok(inner.clone());
    }
    Err(
        Error::custom("the `status` field must be an `Option<...>`: a new object has no status")
            .with_span(ty),
    )
}

/// `#[sync(skip)]` on a resource struct.
fn check_skip_on_spec(kind: &Kind, fields: &Fields) -> darling::Result<()> {
    // On a resource struct the spec is another type, whose fields this derive cannot see: a skip
    // there would be ignored, and the user would believe a field is local-only when it is not.
    if kind.source == Source::CustomResource {
        return Ok(());
    }
    let mut errors = Error::accumulator();
    for field in fields.0.iter().filter(|f| f.skip.is_present()) {
        errors.push(error_at(
            field.skip.span(),
            "`#[sync(skip)]` goes on a field of a spec struct next to \
             `#[derive(CustomResource)]`; on a resource struct the whole `spec` is synced",
        ));
    }
    errors.finish()
}

/// No generic parameters.
fn check_no_generics(generics: &Generics) -> darling::Result<()> {
    // A Kubernetes kind is one concrete type (kube generates none with generics), and the trait
    // needs an owned, `'static` type.
    if generics.params.is_empty() {
        return Ok(());
    }
    Err(
        Error::custom("`#[derive(Syncable)]` does not support generic parameters")
            .with_span(&generics.params),
    )
}

/// `namespace_prefix` with a namespace suffix.
fn check_namespace_room(
    prefix: Option<&LitStr>,
    suffixes: &[(Part, &Option<LitStr>)],
) -> darling::Result<()> {
    // A synced namespace starts with the prefix and ends with each suffix, and it is a DNS-1123
    // label of at most 63 characters: together they may not leave it too long.
    let Some(prefix) = prefix else {
        return Ok(());
    };
    let mut errors = Error::accumulator();
    for (part, suffix) in suffixes {
        let Some(suffix) = suffix else { continue };
        if let Err(p) = sync_names::check_namespace_room(&prefix.value(), *part, &suffix.value()) {
            errors.push(spanned(p, suffix));
        }
    }
    errors.finish()
}

/// `secrets(...)` with `remote_suffix`.
fn check_remote_secret_names(
    secrets: &[LitStr],
    remote_suffix: Option<&LitStr>,
) -> darling::Result<()> {
    // The remote secret is named `<name><remote_suffix>`, a DNS-1123 subdomain of at most 253
    // characters.
    let suffix = remote_suffix.map(LitStr::value).unwrap_or_default();
    let mut errors = Error::accumulator();
    for name in secrets {
        if let Err(p) = sync_names::check_remote_secret_name(&name.value(), &suffix) {
            errors.push(spanned(p, name));
        }
    }
    errors.finish()
}

// ---- Helpers ---------------------------------------------------------------------------------

fn spanned(problem: sync_names::Problem, value: &LitStr) -> Error {
    Error::custom(problem).with_span(value)
}

fn error_at(span: Span, message: impl Display) -> Error {
    syn::Error::new(span, message).into()
}
