//! Darling receivers: what `#[sync(...)]`, `#[kube(...)]` and the fields say, as written.
//!
//! A value is checked as it is read (the rules are in `validate`), so darling's accumulator
//! reports a bad value in the same compile as an unknown key or a bad field attribute.

use darling::ast::NestedMeta;
use darling::util::Flag;
use darling::{Error, FromDeriveInput, FromField, FromMeta};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Attribute, Data, Expr, ExprLit, Generics, Ident, Lit, LitStr, Meta, Path, Type};

use sync_names::Part;

use crate::validate;

/// The input of `#[derive(Syncable)]`, with its container attribute `#[sync(...)]`.
///
/// Every key is optional; an absent key leaves the value of `SyncConfig::new`.
#[derive(FromDeriveInput)]
#[darling(attributes(sync), forward_attrs(kube))]
pub struct Input {
    pub ident: Ident,
    pub generics: Generics,
    #[darling(with = Fields::from_data)]
    pub data: Fields,
    #[darling(with = KubeAttrs::from_forwarded)]
    pub attrs: KubeAttrs,

    pub remote_suffix: Option<Suffix>,
    pub remote_namespace_suffix: Option<Suffix>,
    pub local_namespace_suffix: Option<Suffix>,
    pub namespace_prefix: Option<Prefix>,
    pub secrets: Option<Secrets>,
    pub propagation: Option<Propagation>,
    pub on_remote_delete: Option<OnRemoteDelete>,
    pub concurrency: Option<Concurrency>,
    pub domain: Option<Domain>,
    pub controller_name: Option<ControllerName>,
    pub predecessors: Option<Predecessors>,
    /// `status_observed_generation`: the status carries `observedGeneration`.
    pub status_observed_generation: Flag,
    #[darling(rename = "crate")]
    pub krate: Option<Path>,
}

/// The named fields of the input struct.
pub struct Fields(pub Vec<Field>);

/// One named field and its `#[sync(...)]` attribute.
#[derive(FromField)]
#[darling(attributes(sync))]
pub struct Field {
    pub ident: Option<Ident>,
    pub ty: Type,
    /// `#[sync(skip)]`: a local-only spec field.
    pub skip: Flag,
}

impl Fields {
    fn from_data(data: &Data) -> darling::Result<Self> {
        let named = validate::check_shape(data)?;
        let mut errors = Error::accumulator();
        let fields = named
            .named
            .iter()
            .filter_map(|f| errors.handle(Field::from_field(f)))
            .collect();
        errors.finish_with(Fields(fields))
    }

    /// The fields without their `#[sync(...)]` attributes, for the fallback stub, which must
    /// not fail on the attributes that made the derive fail.
    pub fn lenient(data: &Data) -> Option<Self> {
        let named = validate::check_shape(data).ok()?;
        let fields = named.named.iter().map(|f| Field {
            ident: f.ident.clone(),
            ty: f.ty.clone(),
            skip: Flag::default(),
        });
        Some(Fields(fields.collect()))
    }

    /// The field called `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.0
            .iter()
            .find(|f| f.ident.as_ref().is_some_and(|i| i == name))
    }
}

/// The keys of `#[kube(...)]` that name the kind type kube generates.
///
/// `#[kube]` belongs to `#[derive(CustomResource)]`: every other key is skipped unread and
/// nothing here is an error, so a correct `#[kube]` never gets a diagnostic from this derive.
#[derive(Default)]
pub struct KubeAttrs {
    /// The span of the first `#[kube(...)]`, if there is one.
    pub span: Option<Span>,
    /// `kind = "..."`: the Kubernetes kind and, without `root`, the generated type's name.
    pub kind: Option<LitStr>,
    /// `root = "..."`: the generated type's name.
    pub root: Option<LitStr>,
    /// `status = "..."`: the status type; with it, the generated type has a
    /// `status: Option<Status>` field.
    pub status: Option<LitStr>,
}

impl KubeAttrs {
    /// Reads `kind`, `root` and `status` from every `#[kube(...)]` in `attrs`.
    pub fn from_attrs(attrs: &[Attribute]) -> Self {
        let mut kube = KubeAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("kube")) {
            kube.span.get_or_insert_with(|| attr.path().span());
            for (key, value) in string_keys(attr) {
                match key.to_string().as_str() {
                    "kind" => kube.kind = Some(value),
                    "root" => kube.root = Some(value),
                    "status" => kube.status = Some(value),
                    _ => {}
                }
            }
        }
        kube
    }

    fn from_forwarded(attrs: Vec<Attribute>) -> darling::Result<Self> {
        Ok(Self::from_attrs(&attrs))
    }
}

/// `crate = ...` from `#[sync(...)]`, read leniently for the fallback stub: as darling reads
/// it, but whatever the other keys say.
pub fn lenient_crate(attrs: &[Attribute]) -> Option<darling::Result<Path>> {
    attrs
        .iter()
        .filter_map(|attr| match &attr.meta {
            Meta::List(list) if attr.path().is_ident("sync") => {
                NestedMeta::parse_meta_list(list.tokens.clone()).ok()
            }
            _ => None,
        })
        .flatten()
        .find_map(|item| match item {
            NestedMeta::Meta(meta) if meta.path().is_ident("crate") => Some(Path::from_meta(&meta)),
            _ => None,
        })
}

/// The `key = "string"` items at the top level of a list attribute, skipping everything else
/// without trying to understand it.
fn string_keys(attr: &Attribute) -> Vec<(Ident, LitStr)> {
    let Meta::List(list) = &attr.meta else {
        return Vec::new();
    };
    let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
    tokens
        .split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
        .filter_map(|item| match item {
            [
                TokenTree::Ident(key),
                TokenTree::Punct(eq),
                TokenTree::Literal(literal),
            ] if eq.as_char() == '=' => {
                let lit =
                    syn::parse2(TokenStream::from(TokenTree::Literal(literal.clone()))).ok()?;
                Some((key.clone(), lit))
            }
            _ => None,
        })
        .collect()
}

/// The key of `key = value`, e.g. `remote_suffix`.
fn key(item: &Meta) -> String {
    darling::util::path_to_string(item.path())
}

/// The string literal of `key = "..."`.
fn string_value(item: &Meta, example: &str) -> darling::Result<LitStr> {
    if let Meta::NameValue(nv) = item
        && let Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) = unwrap_group(&nv.value)
    {
        return Ok(lit.clone());
    }
    let key = key(item);
    Err(Error::custom(format!(
        "`{key}` takes a string, as in `{key} = \"{example}\"`"
    ))
    .with_span(&value_or_item(item)))
}

/// The value of `key = value`, or the whole item when it has another form: what to span an
/// error about the form on.
fn value_or_item(item: &Meta) -> &dyn ToTokens {
    match item {
        Meta::NameValue(nv) => &nv.value,
        item => item,
    }
}

/// A value that passed through a `macro_rules!` sits in an invisible group.
fn unwrap_group(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => unwrap_group(&group.expr),
        expr => expr,
    }
}

/// `remote_suffix`, `remote_namespace_suffix` or `local_namespace_suffix`: the end of a name.
pub struct Suffix(pub LitStr);

impl FromMeta for Suffix {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let value = string_value(item, "-eu")?;
        let part = match key(item).as_str() {
            "remote_suffix" => Part::RemoteSuffix,
            "remote_namespace_suffix" => Part::RemoteNamespaceSuffix,
            _ => Part::LocalNamespaceSuffix,
        };
        validate::check_part(part, &value)?;
        Ok(Suffix(value))
    }
}

/// `namespace_prefix`: the start of a namespace.
pub struct Prefix(pub LitStr);

impl FromMeta for Prefix {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let value = string_value(item, "tenant-")?;
        validate::check_part(Part::NamespacePrefix, &value)?;
        Ok(Prefix(value))
    }
}

/// `secrets("a", "b")`: names of local secrets sent up.
pub struct Secrets(pub Vec<LitStr>);

impl FromMeta for Secrets {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let (names, mut errors) = string_list(
            item,
            "`secrets` takes a list of names, as in `secrets(\"db-credentials\")`",
            validate::check_secret_name,
        )?;
        errors.handle(validate::check_unique_secrets(&names));
        errors.finish_with(Secrets(names))
    }
}

/// A list of string literals, `key("a", "b")`, each checked by `check`: the ones that pass,
/// and the errors of the others (and of anything not a string) still to be reported. `usage`
/// says what the attribute takes.
fn string_list(
    item: &Meta,
    usage: &str,
    check: impl Fn(&LitStr) -> darling::Result<()>,
) -> darling::Result<(Vec<LitStr>, darling::error::Accumulator)> {
    let wrong_form = || Error::custom(usage);
    let Meta::List(list) = item else {
        return Err(wrong_form().with_span(&value_or_item(item)));
    };
    let nested = NestedMeta::parse_meta_list(list.tokens.clone())?;
    let mut errors = Error::accumulator();
    let mut names = Vec::new();
    for n in nested {
        match n {
            NestedMeta::Lit(Lit::Str(name)) => {
                if errors.handle(check(&name)).is_some() {
                    names.push(name);
                }
            }
            other => errors.push(wrong_form().with_span(&other)),
        }
    }
    Ok((names, errors))
}

/// `propagation = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Foreground,
    Background,
    Orphan,
}

impl FromMeta for Propagation {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        use Propagation::{Background, Foreground, Orphan};
        let value = string_value(item, "background")?;
        let choices = [
            ("foreground", Foreground),
            ("background", Background),
            ("orphan", Orphan),
        ];
        validate::check_choice("propagation", &value, &choices)
    }
}

/// `on_remote_delete = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRemoteDelete {
    Namespace,
    NamespaceOrResource,
    Orphan,
}

impl FromMeta for OnRemoteDelete {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        use OnRemoteDelete::{Namespace, NamespaceOrResource, Orphan};
        let value = string_value(item, "namespace")?;
        let choices = [
            ("namespace", Namespace),
            ("resource", NamespaceOrResource),
            ("orphan", Orphan),
        ];
        validate::check_choice("on_remote_delete", &value, &choices)
    }
}

/// `concurrency = N`.
pub struct Concurrency(pub usize);

impl FromMeta for Concurrency {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        if let Meta::NameValue(nv) = item
            && let Expr::Lit(ExprLit {
                lit: Lit::Int(value),
                ..
            }) = unwrap_group(&nv.value)
        {
            return validate::check_concurrency(value).map(Concurrency);
        }
        Err(
            Error::custom("`concurrency` takes a positive integer, as in `concurrency = 8`")
                .with_span(&value_or_item(item)),
        )
    }
}

/// `domain = "..."`: the prefix of every key the controller writes.
pub struct Domain(pub LitStr);

impl FromMeta for Domain {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let value = string_value(item, "acme.dev")?;
        validate::check_domain(&value)?;
        Ok(Domain(value))
    }
}

/// `controller_name = "..."`.
pub struct ControllerName(pub LitStr);

impl FromMeta for ControllerName {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let value = string_value(item, "database-sync")?;
        validate::check_controller_name("controller_name", &value)?;
        Ok(ControllerName(value))
    }
}

/// `predecessors("a", "b")`: former names of this controller, whose claims it adopts.
pub struct Predecessors(pub Vec<LitStr>);

impl FromMeta for Predecessors {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let (names, errors) = string_list(
            item,
            "`predecessors` takes a list of controller names, as in \
             `predecessors(\"database-sync\")`",
            |name| validate::check_controller_name("predecessors", name),
        )?;
        errors.finish_with(Predecessors(names))
    }
}
