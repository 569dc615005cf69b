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

use crate::attr::{Fields, Input, KubeAttrs, OnRemoteDelete, Propagation};

/// A Kubernetes name that is a DNS-1123 label (a namespace) has at most this many characters.
const MAX_LABEL: usize = 63;
/// A Kubernetes name that is a DNS-1123 subdomain (a secret) has at most this many characters.
const MAX_SUBDOMAIN: usize = 253;
/// A field manager or an event's reporting controller has at most this many characters.
const MAX_CONTROLLER_NAME: usize = 128;

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

/// The configuration values that `#[sync(...)]` sets; `None` keeps `SyncConfig::new`'s.
pub struct Config {
    pub controller_name: String,
    pub remote_suffix: Option<LitStr>,
    pub remote_namespace_suffix: Option<LitStr>,
    pub local_namespace_suffix: Option<LitStr>,
    pub namespace_prefix: Option<LitStr>,
    pub secrets: Vec<LitStr>,
    pub propagation: Option<Propagation>,
    pub on_remote_delete: Option<OnRemoteDelete>,
    pub concurrency: Option<usize>,
    pub domain: Option<LitStr>,
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
            controller_name: format!("{}-sync", kind.name.to_lowercase()),
            remote_suffix: None,
            remote_namespace_suffix: None,
            local_namespace_suffix: None,
            namespace_prefix: None,
            secrets: Vec::new(),
            propagation: None,
            on_remote_delete: None,
            concurrency: None,
            domain: None,
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

    errors.handle(check_no_generics(&input.generics));
    let kind = errors.handle(check_kind(&input.ident, &input.attrs, &input.data));
    if let Some(kind) = &kind {
        errors.handle(check_skip_on_spec(kind, &input.data));
    }
    let namespace_suffixes = [
        ("remote_namespace_suffix", &remote_namespace_suffix),
        ("local_namespace_suffix", &local_namespace_suffix),
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
            Some(name) => name.0.value(),
            None => Config::defaults(&kind).controller_name,
        },
        remote_suffix,
        remote_namespace_suffix,
        local_namespace_suffix,
        namespace_prefix,
        secrets,
        propagation: input.propagation,
        on_remote_delete: input.on_remote_delete,
        concurrency: input.concurrency.map(|c| c.0),
        domain: input.domain.map(|d| d.0),
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

/// `remote_suffix`, `remote_namespace_suffix` and `local_namespace_suffix`.
pub fn check_suffix(key: &str, value: &LitStr) -> darling::Result<()> {
    // A suffix ends every mapped name or namespace, and those are DNS-1123 labels: with a
    // character a label cannot hold, or a '-' where a label cannot end, every mapped name would
    // be invalid and nothing would ever sync. A label has at most 63 characters, and the suffix
    // leaves room for at least one more.
    let s = value.value();
    let problem = if !s.chars().all(is_label_char) {
        "must contain only lowercase letters, digits and '-'".to_owned()
    } else if s.ends_with('-') {
        "must end with a lowercase letter or digit, as every Kubernetes name does".to_owned()
    } else if s.len() >= MAX_LABEL {
        format!(
            "must be at most {} characters (it is {}), to leave room in a Kubernetes name of at \
             most {MAX_LABEL}",
            MAX_LABEL - 1,
            s.len()
        )
    } else {
        return Ok(());
    };
    Err(Error::custom(format!("`{key}` {problem}")).with_span(value))
}

/// `namespace_prefix`.
pub fn check_prefix(key: &str, value: &LitStr) -> darling::Result<()> {
    // The prefix starts every synced namespace, a DNS-1123 label: with a character a label
    // cannot hold, or a '-' where a label cannot start, no namespace could ever match. A label
    // has at most 63 characters, and the prefix leaves room for at least one more.
    let s = value.value();
    let problem = if !s.chars().all(is_label_char) {
        "must contain only lowercase letters, digits and '-'".to_owned()
    } else if s.starts_with('-') {
        "must start with a lowercase letter or digit, as every namespace does".to_owned()
    } else if s.len() >= MAX_LABEL {
        format!(
            "must be at most {} characters (it is {}), to leave room in a namespace of at most \
             {MAX_LABEL}",
            MAX_LABEL - 1,
            s.len()
        )
    } else {
        return Ok(());
    };
    Err(Error::custom(format!("`{key}` {problem}")).with_span(value))
}

/// One name in `secrets(...)`.
pub fn check_secret_name(name: &LitStr) -> darling::Result<()> {
    // A secret's name is a DNS-1123 subdomain. A configured name that is not one could never
    // match a local secret, and the secret would silently never be sent up.
    match subdomain_problem(&name.value()) {
        None => Ok(()),
        Some(problem) => Err(Error::custom(format!(
            "secret name {:?} in `secrets(...)` {problem}",
            name.value()
        ))
        .with_span(name)),
    }
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
    // The domain is the prefix of every annotation and finalizer the controller writes, and the
    // API server rejects a key whose prefix is not a DNS-1123 subdomain: every write would fail.
    match subdomain_problem(&value.value()) {
        None => Ok(()),
        Some(problem) => Err(Error::custom(format!("`domain` {problem}")).with_span(value)),
    }
}

/// `controller_name`.
pub fn check_controller_name(value: &LitStr) -> darling::Result<()> {
    // The controller name is the field manager of every write and the reporting controller of
    // every event; the API server rejects an empty one, or one longer than 128 characters.
    let s = value.value();
    let problem = if s.is_empty() {
        "must not be empty".to_owned()
    } else if s.len() > MAX_CONTROLLER_NAME {
        format!(
            "is {} characters long, but a field manager's name has at most {MAX_CONTROLLER_NAME}",
            s.len()
        )
    } else {
        return Ok(());
    };
    Err(Error::custom(format!("`controller_name` {problem}")).with_span(value))
}

// ---- Rules across values ---------------------------------------------------------------------

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
    suffixes: &[(&str, &Option<LitStr>)],
) -> darling::Result<()> {
    // A synced namespace starts with the prefix and ends with each suffix, and it is a DNS-1123
    // label of at most 63 characters: together they may not leave it too long.
    let Some(prefix) = prefix else {
        return Ok(());
    };
    let mut errors = Error::accumulator();
    for (key, suffix) in suffixes {
        let Some(suffix) = suffix else { continue };
        let length = prefix.value().len() + suffix.value().len();
        if length > MAX_LABEL {
            errors.push(
                Error::custom(format!(
                    "`namespace_prefix` and `{key}` are {length} characters together, but a \
                     namespace has at most {MAX_LABEL}"
                ))
                .with_span(suffix),
            );
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
        let remote = format!("{}{suffix}", name.value());
        if remote.len() > MAX_SUBDOMAIN {
            errors.push(
                Error::custom(format!(
                    "the remote secret name (this name and `remote_suffix`) is {} characters \
                     long, but a secret name has at most {MAX_SUBDOMAIN}",
                    remote.len()
                ))
                .with_span(name),
            );
        }
    }
    errors.finish()
}

// ---- Helpers ---------------------------------------------------------------------------------

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Why `s` is not a DNS-1123 subdomain, if it is not.
fn subdomain_problem(s: &str) -> Option<String> {
    let problem = if s.is_empty() {
        "must not be empty".to_owned()
    } else if !s.chars().all(|c| is_label_char(c) || c == '.') {
        "must contain only lowercase letters, digits, '-' and '.'".to_owned()
    } else if s.split('.').any(|part| {
        !part.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !part.ends_with(|c: char| c.is_ascii_alphanumeric())
    }) {
        "must start and end with a lowercase letter or digit, and so must each part between \
         dots"
            .to_owned()
    } else if s.len() > MAX_SUBDOMAIN {
        format!(
            "is {} characters long, but at most {MAX_SUBDOMAIN} are allowed",
            s.len()
        )
    } else {
        return None;
    };
    Some(problem)
}

fn error_at(span: Span, message: impl Display) -> Error {
    syn::Error::new(span, message).into()
}
