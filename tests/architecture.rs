//! The rules of docs/design.md ("Rules no code may break") that the source itself can show,
//! checked on the source tree read as Rust (`syn`): which stage may import which, no import
//! cycle in any crate of the workspace, and no file over the size limit outside its tests.
//!
//! A reference is any path the code names that starts at `crate::`, `super::` or `self::` (or
//! at a child module's name), in a `use` tree (groups nested and split over lines included), in
//! code, or in a macro's tokens; items under `#[cfg(test)]` are left out. Each resolves to the
//! deepest module of the crate it names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// Lines a source file may have before its `#[cfg(test)]` module.
const MAX_LINES: usize = 600;

/// Files over [`MAX_LINES`] for now, relative to the workspace, each with the most lines it may
/// have: due to be split by what they own, and not to grow meanwhile (none today). Any other
/// file over the limit fails.
const TOO_LONG_FOR_NOW: &[(&str, usize)] = &[];

/// Imports that close a circle, known and due to be removed: (crate, from, to), modules as
/// `a::b` (none today). The cycle check leaves them out, and fails once one is gone (take it off
/// the list).
const KNOWN_BACK_EDGES: &[(&str, &str, &str)] = &[];

/// The floor every stage of the agent may import, which imports no stage.
const SHARED: &[&str] = &["sample", "pod", "pci", "backoff", "paths", "timing"];

/// A module path inside its crate: `["collect", "amd"]` for `src/collect/amd/mod.rs`; the
/// crate root (`lib.rs`) is `[]`.
type Module = Vec<String>;

struct Source {
    /// `src/collect/amd/mod.rs`, relative to the workspace.
    rel: String,
    module: Module,
    text: String,
}

/// One crate's source files (its library's: a `main.rs` beside a `lib.rs` is another crate and
/// is kept apart, in `bin`).
struct Crate {
    /// Relative to the workspace: `""` for the agent, `hpa-sim`, `vendor-mocks/nvml-mock`.
    dir: String,
    files: Vec<Source>,
    /// `src/main.rs` where the crate also has a `lib.rs`.
    bin: Option<Source>,
}

impl Crate {
    fn modules(&self) -> BTreeSet<Module> {
        self.files.iter().map(|s| s.module.clone()).collect()
    }

    /// Every file's references, by file, as the modules they resolve to.
    fn references(&self) -> Vec<(&Source, BTreeSet<Module>)> {
        let known = self.modules();
        self.files
            .iter()
            .map(|s| (s, references(&s.module, &s.text, &known)))
            .collect()
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The workspace's members, as the root Cargo.toml lists them.
fn members() -> Vec<String> {
    let toml = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let line = toml
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list in Cargo.toml");
    let list = &line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()];
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

fn crates() -> Vec<Crate> {
    members().into_iter().map(|m| load(&m)).collect()
}

fn load(member: &str) -> Crate {
    let root = workspace();
    let dir = if member == "." {
        String::new()
    } else {
        member.to_string()
    };
    let src = root.join(&dir).join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths.sort();
    let has_lib = src.join("lib.rs").exists();
    let mut files = Vec::new();
    let mut bin = None;
    for path in paths {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let inside = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut module: Module = inside
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_string)
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let source = |module| Source {
            rel: rel.clone(),
            module,
            text: text.clone(),
        };
        match inside.as_str() {
            "lib.rs" => files.push(source(Vec::new())),
            "main.rs" if has_lib => bin = Some(source(Vec::new())),
            "main.rs" => files.push(source(Vec::new())),
            _ if inside.starts_with("bin/") => {}
            _ => files.push(source(module)),
        }
    }
    Crate { dir, files, bin }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules of `known` that the code of the file `module` names (its `#[cfg(test)]` items
/// left out). A file that does not parse fails the test that reads it.
fn references(module: &[String], text: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("{module:?}: {e}"));
    let mut refs = Refs {
        base: module.to_vec(),
        known,
        out: BTreeSet::new(),
    };
    refs.visit_file(&file);
    refs.out
}

struct Refs<'a> {
    /// The module the code being read is in (the file's, then any inline `mod` within).
    base: Module,
    known: &'a BTreeSet<Module>,
    out: BTreeSet<Module>,
}

impl Refs<'_> {
    fn note(&mut self, segments: &[String]) {
        if let Some(m) = resolve(&self.base, segments, self.known) {
            self.out.insert(m);
        }
    }

    /// `crate :: a :: b` and the like in a macro's tokens (`matches!`, `format!`, ...).
    fn scan(&mut self, tokens: TokenStream) {
        let flat = flatten_tokens(tokens);
        for (i, t) in flat.iter().enumerate() {
            let Token::Ident(first) = t else { continue };
            if !matches!(first.as_str(), "crate" | "super" | "self") {
                continue;
            }
            if i > 0 && flat[i - 1] == Token::Colons {
                continue; // Inside a path already read from its start.
            }
            let mut segments = vec![first.clone()];
            let mut j = i + 1;
            while let (Some(Token::Colons), Some(Token::Ident(next))) =
                (flat.get(j), flat.get(j + 1))
            {
                segments.push(next.clone());
                j += 2;
            }
            if segments.len() > 1 {
                self.note(&segments);
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    Colons,
    Other,
}

fn flatten_tokens(tokens: TokenStream) -> Vec<Token> {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(t) = iter.next() {
        match t {
            TokenTree::Ident(i) => out.push(Token::Ident(i.to_string())),
            TokenTree::Punct(p) if p.as_char() == ':' => {
                if matches!(iter.peek(), Some(TokenTree::Punct(q)) if q.as_char() == ':') {
                    iter.next();
                    out.push(Token::Colons);
                } else {
                    out.push(Token::Other);
                }
            }
            TokenTree::Group(g) => {
                out.push(Token::Other);
                out.extend(flatten_tokens(g.stream()));
                out.push(Token::Other);
            }
            _ => out.push(Token::Other),
        }
    }
    out
}

/// Whether `#[cfg(...)]` among `attrs` makes the item test-only.
fn test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta.require_list().is_ok_and(|l| {
                let t = l.tokens.to_string();
                t == "test" || (t.starts_with("all") && t.contains("test") && !t.contains("not"))
            })
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item;
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !test_only(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs: &[syn::Attribute] = match item {
            syn::ImplItem::Fn(f) => &f.attrs,
            syn::ImplItem::Const(c) => &c.attrs,
            _ => &[],
        };
        if !test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.base.push(m.ident.to_string());
            visit::visit_item_mod(self, m);
            self.base.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut paths);
        for p in paths {
            self.note(&p);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.note(&segments);
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.scan(m.tokens.clone());
        visit::visit_macro(self, m);
    }

    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {
        // Doc comments and the like: not code.
    }
}

/// Every path a `use` tree names, groups and globs flattened (a glob names its module).
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    use syn::UseTree;
    let mut leaf = |name: String, prefix: &Vec<String>| {
        let mut p = prefix.clone();
        if name != "self" {
            p.push(name);
        }
        out.push(p);
    };
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) => leaf(n.ident.to_string(), prefix),
        UseTree::Rename(r) => leaf(r.ident.to_string(), prefix),
        UseTree::Glob(_) => out.push(prefix.clone()),
        UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

/// The module of `known` that `segments`, named in module `base`, lands in: `crate::`,
/// `super::` and `self::` resolved, or a first segment that is a child module of `base`
/// (a path of two segments or more). `None` for any other path (another crate's, a local
/// name).
fn resolve(base: &[String], segments: &[String], known: &BTreeSet<Module>) -> Option<Module> {
    let first = segments.first()?;
    let (mut path, mut rest): (Module, &[String]) = match first.as_str() {
        "crate" => (Vec::new(), &segments[1..]),
        "super" | "self" => (base.to_vec(), segments),
        _ => {
            let mut child = base.to_vec();
            child.push(first.clone());
            if segments.len() < 2 || !known.contains(&child) {
                return None;
            }
            (base.to_vec(), segments)
        }
    };
    while let Some(s) = rest.first() {
        match s.as_str() {
            "super" => {
                path.pop()?;
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    path.extend(rest.iter().cloned());
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

/// The edges between sibling modules that `from` naming `to` makes: from the child of their
/// deepest common parent on `from`'s side to the child on `to`'s side. A module naming one of
/// its own ancestors or descendants makes none (a parent declares its children; a child uses
/// its parent's items).
fn sibling_edge(from: &[String], to: &[String]) -> Option<(Module, Module)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((from[..=common].to_vec(), to[..=common].to_vec()))
}

/// A cycle in `graph`, if there is one, as the nodes along it.
fn cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut c = path[at..].to_vec();
            c.push(node.clone());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// The modules of `graph` that lie on a circle, with the modules of their circles they name.
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeMap<String, Vec<String>> {
    let reach = |from: &Module| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in graph.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&Module, BTreeSet<Module>> =
        graph.keys().map(|n| (n, reach(n))).collect();
    let mut out = BTreeMap::new();
    for (n, seen) in &reaches {
        if !seen.contains(*n) {
            continue;
        }
        let named: Vec<String> = graph[*n]
            .iter()
            .filter(|m| reaches.get(m).is_some_and(|r| r.contains(*n)))
            .map(|m| m.join("::"))
            .collect();
        out.insert(n.join("::"), named);
    }
    out
}

/// The edges between sibling modules of one crate.
fn sibling_graph(krate: &Crate) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (s, refs) in krate.references() {
        for to in refs {
            if let Some((a, b)) = sibling_edge(&s.module, &to) {
                graph.entry(a).or_default().insert(b);
            }
        }
    }
    graph
}

fn agent() -> Crate {
    load(".")
}

/// The agent's files under the top-level module `top`, with the top-level modules they name.
fn stage_imports(krate: &Crate, tops: &[&str]) -> Vec<(String, BTreeSet<String>)> {
    krate
        .references()
        .into_iter()
        .filter(|(s, _)| s.module.first().is_some_and(|m| tops.contains(&m.as_str())))
        .map(|(s, refs)| {
            let named = refs
                .into_iter()
                .filter_map(|m| m.first().cloned())
                .collect();
            (s.rel.clone(), named)
        })
        .collect()
}

fn offenders_of(krate: &Crate, tops: &[&str], forbidden: &str) -> Vec<String> {
    stage_imports(krate, tops)
        .into_iter()
        .filter(|(_, named)| named.contains(forbidden))
        .map(|(rel, _)| rel)
        .collect()
}

#[test]
fn collect_and_encode_import_nothing_from_attribute() {
    let offenders = offenders_of(&agent(), &["collect", "encode"], "attribute");
    assert!(
        offenders.is_empty(),
        "collect and encode must not import attribute (docs/design.md, rules); shared types \
         belong one floor down (src/sample.rs, src/pod.rs, src/pci.rs): {offenders:?}"
    );
}

/// Rule 1, "a scrape never calls a driver", in the one form the source can show: what serves
/// and encodes a scrape names nothing of the collectors.
#[test]
fn web_and_encode_import_nothing_from_collect() {
    let offenders = offenders_of(&agent(), &["web", "encode"], "collect");
    assert!(
        offenders.is_empty(),
        "web and encode must not import collect (docs/design.md, rule 1): a scrape reads the \
         snapshot, never a collector: {offenders:?}"
    );
}

#[test]
fn the_shared_floor_imports_no_stage() {
    let mut offenders = Vec::new();
    for (rel, named) in stage_imports(&agent(), SHARED) {
        let stages: Vec<&String> = named
            .iter()
            .filter(|m| !SHARED.contains(&m.as_str()))
            .collect();
        if !stages.is_empty() {
            offenders.push(format!("{rel} imports {stages:?}"));
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// The agent's stages in the direction of flow (docs/design.md): none names a later one.
const STAGES: &[&str] = &["collect", "attribute", "snapshot", "encode", "web"];

#[test]
fn no_stage_knows_a_later_one() {
    let agent = agent();
    let mut offenders = Vec::new();
    for (i, stage) in STAGES.iter().enumerate() {
        for later in &STAGES[i + 1..] {
            for rel in offenders_of(&agent, &[stage], later) {
                offenders.push(format!("{rel} ({stage}) imports {later}"));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// Every crate of the workspace: no two modules of one parent name each other, directly or
/// round a longer circle (the agent's stages, the files of a folder, the mocks' rooms).
#[test]
fn no_import_cycle_between_modules() {
    let mut cycles = Vec::new();
    for krate in crates() {
        let mut graph = sibling_graph(&krate);
        for (dir, from, to) in KNOWN_BACK_EDGES.iter().filter(|(d, _, _)| *d == krate.dir) {
            let (from, to): (Module, Module) = (
                from.split("::").map(str::to_string).collect(),
                to.split("::").map(str::to_string).collect(),
            );
            assert!(
                graph.get_mut(&from).is_some_and(|next| next.remove(&to)),
                "{dir}: {from:?} no longer imports {to:?}: take it off KNOWN_BACK_EDGES"
            );
        }
        if let Some(c) = cycle(&graph) {
            let names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
            cycles.push(format!(
                "{}: {} (every circle: {:?})",
                krate.dir,
                names.join(" -> "),
                circles(&graph)
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules importing each other: {cycles:#?}"
    );
}

/// The line rule covers every `.rs` file under each workspace member's `src/` (binaries
/// included); test crates (`tests/`), benches and examples are not held to it.
#[test]
fn no_file_is_over_the_limit_outside_its_tests() {
    let mut long = Vec::new();
    let mut listed = Vec::new();
    for krate in crates() {
        for s in krate.files.iter().chain(&krate.bin) {
            let lines = lines_before_tests(&s.text);
            match TOO_LONG_FOR_NOW.iter().find(|(f, _)| *f == s.rel) {
                Some((_, most)) => {
                    listed.push(s.rel.clone());
                    if lines > *most {
                        long.push(format!("{}: {lines} lines, more than its {most}", s.rel));
                    }
                }
                None if lines > MAX_LINES => {
                    long.push(format!("{}: {lines} lines before its tests", s.rel));
                }
                None => {}
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines outside tests (split them by what they own): {long:#?}"
    );
    for (f, _) in TOO_LONG_FOR_NOW {
        assert!(
            listed.iter().any(|l| l == f),
            "{f} is listed in TOO_LONG_FOR_NOW but is gone: take it off the list"
        );
    }
}

fn lines_before_tests(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

/// The rules see every form an import takes, and nothing that is not one.
#[test]
fn the_rules_see_what_they_check() {
    let m = |p: &str| -> Module {
        if p.is_empty() {
            Vec::new()
        } else {
            p.split("::").map(str::to_string).collect()
        }
    };
    let known: BTreeSet<Module> = [
        "",
        "attribute",
        "attribute::deviceid",
        "attribute::names",
        "collect",
        "collect::nvidia",
        "collect::nvidia::calls",
        "collect::nvidia::device",
        "collect::nvidia::tiers",
        "encode",
        "encode::agent",
        "pod",
    ]
    .into_iter()
    .map(m)
    .collect();
    let refs = |module: &str, code: &str| -> BTreeSet<String> {
        references(&m(module), code, &known)
            .into_iter()
            .map(|p| p.join("::"))
            .collect()
    };
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };

    // A plain use, and a path in code.
    assert_eq!(
        refs("encode", "use crate::attribute::deviceid::X;"),
        set(&["attribute::deviceid"])
    );
    assert_eq!(
        refs("encode", "fn f() { crate::attribute::f(); }"),
        set(&["attribute"])
    );
    // A group, nested, split over lines.
    assert_eq!(
        refs("encode", "use crate::{\n    attribute::{\n        names::N,\n        deviceid,\n    },\n    pod::P,\n};"),
        set(&["attribute::names", "attribute::deviceid", "pod"])
    );
    assert_eq!(
        refs("encode", "use crate::{attribute::names::N, pod};"),
        set(&["attribute::names", "pod"])
    );
    // super::, from a file and from deeper.
    assert_eq!(
        refs("collect", "use super::attribute::names::N;"),
        set(&["attribute::names"])
    );
    assert_eq!(
        refs("encode::agent", "use super::super::attribute;"),
        set(&["attribute"])
    );
    assert_eq!(
        refs("collect", "fn f() { let x = super::attribute::f(); }"),
        set(&["attribute"])
    );
    assert_eq!(
        refs("collect::nvidia::device", "use super::{calls, tiers::X};"),
        set(&["collect::nvidia::calls", "collect::nvidia::tiers"])
    );
    assert_eq!(
        refs("collect::nvidia::device", "use super::*;"),
        set(&["collect::nvidia"])
    );
    // self:: and a child's bare name.
    assert_eq!(
        refs("collect::nvidia", "use self::calls::X;"),
        set(&["collect::nvidia::calls"])
    );
    assert_eq!(
        refs("collect::nvidia", "use calls::X; fn f() { tiers::g(); }"),
        set(&["collect::nvidia::calls", "collect::nvidia::tiers"])
    );
    // In a type, and in a macro's tokens.
    assert_eq!(
        refs("encode", "struct S { a: Vec<crate::attribute::names::N> }"),
        set(&["attribute::names"])
    );
    assert_eq!(
        refs(
            "encode",
            "fn f(x: u8) -> bool { matches!(x, crate::pod::A) }"
        ),
        set(&["pod"])
    );
    // An inline module resolves super:: from where it stands.
    assert_eq!(
        refs(
            "collect::nvidia",
            "mod inner { use super::super::super::pod::P; }"
        ),
        set(&["pod"])
    );
    // Not imports: comments, strings, doc comments, other crates, test-only items.
    assert!(refs(
        "encode",
        "// use crate::attribute::X;\n/// crate::attribute\nfn f() {}"
    )
    .is_empty());
    assert!(refs("encode", "const S: &str = \"crate::attribute::X\";").is_empty());
    assert!(refs(
        "encode",
        "use std::collections::BTreeMap; use attribute_like::X;"
    )
    .is_empty());
    assert!(refs(
        "encode",
        "#[cfg(test)]\nmod tests { use crate::attribute::X; }"
    )
    .is_empty());
    assert!(refs("encode", "#[cfg(test)]\nuse crate::attribute::X;").is_empty());
    assert!(refs(
        "encode",
        "#[cfg(all(test, unix))]\nfn t() { crate::attribute::f(); }"
    )
    .is_empty());
    assert_eq!(
        refs("encode", "#[cfg(not(test))]\nuse crate::attribute::X;"),
        set(&["attribute"])
    );

    // Edges join siblings of one parent; a module naming its parent or its child makes none.
    assert_eq!(
        sibling_edge(&m("collect::nvidia::device"), &m("collect::nvidia::calls")),
        Some((m("collect::nvidia::device"), m("collect::nvidia::calls")))
    );
    assert_eq!(
        sibling_edge(&m("encode::agent"), &m("attribute::names")),
        Some((m("encode"), m("attribute")))
    );
    assert_eq!(
        sibling_edge(&m("collect::nvidia::device"), &m("collect::nvidia")),
        None
    );
    assert_eq!(sibling_edge(&m("collect"), &m("collect::nvidia")), None);

    let graph: BTreeMap<Module, BTreeSet<Module>> = [
        (m("a"), [m("b")].into()),
        (m("b"), [m("c")].into()),
        (m("c"), [m("a")].into()),
    ]
    .into();
    assert!(cycle(&graph).is_some());
    let graph: BTreeMap<Module, BTreeSet<Module>> =
        [(m("a"), [m("b")].into()), (m("b"), [m("c")].into())].into();
    assert_eq!(cycle(&graph), None);

    // The NVML mock's circle as it was: state and watch calling up into api::events.
    let mock = Crate {
        dir: "mock".into(),
        files: vec![
            Source {
                rel: "api/events.rs".into(),
                module: m("api::events"),
                text: "use crate::state;".into(),
            },
            Source {
                rel: "api/mod.rs".into(),
                module: m("api"),
                text: String::new(),
            },
            Source {
                rel: "state.rs".into(),
                module: m("state"),
                text: "fn changed() { crate::api::events::wake_waiters(); }".into(),
            },
        ],
        bin: None,
    };
    assert!(cycle(&sibling_graph(&mock)).is_some());

    assert_eq!(lines_before_tests("a\nb\n#[cfg(test)]\nmod tests {}\n"), 2);
    assert!(members().contains(&"vendor-mocks/nvml-mock".to_string()));
}
