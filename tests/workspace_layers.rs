//! The layers of ARCHITECTURE.md hold: no crate depends on a crate its table row does not
//! list, no top-level module of `src/` imports a module its row does not list, layer 4
//! never imports layer 5, and the only import cycle is the one the page allows.
//!
//! The allowed edges are read from ARCHITECTURE.md itself, so the page and the code cannot
//! drift apart: moving a wall means editing the page, in the same change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One table of ARCHITECTURE.md: name → (layer, allowed).
type Table = BTreeMap<String, (u32, BTreeSet<String>)>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The rows of the table under `heading` (`| name | layer | may … |`).
fn table(page: &str, heading: &str) -> Table {
    let start = page
        .find(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section `{heading}`"));
    let mut rows = Table::new();
    for line in page[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let [name, layer, allowed] = cells.as_slice() else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue; // the header and its rule
        };
        let allowed = allowed
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        rows.insert(name.to_string(), (layer, allowed));
    }
    assert!(!rows.is_empty(), "the table under `{heading}` is empty");
    rows
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// The `pincer-*` crates a manifest depends on (normal dependencies only).
fn pincer_dependencies(manifest: &Path) -> (String, BTreeSet<String>) {
    let text = std::fs::read_to_string(manifest).expect("manifest");
    let doc: toml_edit::DocumentMut = text.parse().expect("manifest is TOML");
    let name = doc["package"]["name"]
        .as_str()
        .expect("package name")
        .to_string();
    let deps = doc
        .get("dependencies")
        .and_then(|d| d.as_table_like())
        .map(|t| {
            t.iter()
                .map(|(k, _)| k.to_string())
                .filter(|k| k.starts_with("pincer-"))
                .collect()
        })
        .unwrap_or_default();
    (name, deps)
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let page = architecture();
    let allowed = table(&page, "## Allowed crate dependencies");
    let workspace: toml_edit::DocumentMut = std::fs::read_to_string(root().join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("TOML");
    let mut manifests = vec![root().join("Cargo.toml")];
    for member in workspace["workspace"]["members"]
        .as_array()
        .expect("workspace members")
    {
        let member = member.as_str().expect("member path");
        manifests.push(root().join(member).join("Cargo.toml"));
    }
    let mut problems = Vec::new();
    for manifest in manifests {
        let (name, deps) = pincer_dependencies(&manifest);
        let Some((layer, may)) = allowed.get(&name) else {
            problems.push(format!(
                "crate `{name}` is not in ARCHITECTURE.md's crate table"
            ));
            continue;
        };
        for dep in deps {
            if !may.contains(&dep) {
                problems.push(format!(
                    "crate `{name}` (layer {layer}) depends on `{dep}`, which its row does not allow"
                ));
            }
            if let Some((dep_layer, _)) = allowed.get(&dep)
                && dep_layer >= layer
            {
                problems.push(format!(
                    "crate `{name}` (layer {layer}) depends on `{dep}` (layer {dep_layer}): only lower layers"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The text without comments (doc links name modules without importing them).
fn code_only(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // `//` inside a string (a URL) keeps the line; comments start a line or follow code.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules of `src/` that `text` imports: `crate::x::…` and every first
/// segment of `use crate::{x, y::{…}}`.
fn imports(text: &str) -> BTreeSet<String> {
    let code = code_only(text);
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A group: split its top level on commas.
            let (mut depth, mut item, mut end) = (0usize, String::new(), group.len());
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        first_segment(&item).map(|s| out.insert(s));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            first_segment(&item).map(|s| out.insert(s));
            rest = &group[end..];
        } else if let Some(segment) = first_segment(rest) {
            out.insert(segment);
        }
    }
    out
}

fn first_segment(text: &str) -> Option<String> {
    let segment: String = text
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!segment.is_empty() && segment != "self").then_some(segment)
}

/// Every top-level module of `src/` and what its files import.
fn module_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let first = rel.components().next().expect("a component");
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let mut found = imports(&text);
            found.remove(&module);
            out.entry(module).or_default().extend(found);
        }
    }
    out
}

/// What breaks the table's rules in `actual` (module → imports).
fn violations(allowed: &Table, actual: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (module, imports) in actual {
        let Some((layer, may)) = allowed.get(module) else {
            problems.push(format!(
                "module `{module}` is not in ARCHITECTURE.md's module table"
            ));
            continue;
        };
        for import in imports {
            match allowed.get(import) {
                None => problems.push(format!(
                    "module `{module}` imports `crate::{import}`, which is not in the module table"
                )),
                Some((import_layer, _)) if import_layer > layer => problems.push(format!(
                    "module `{module}` (layer {layer}) imports `{import}` (layer {import_layer}): a lower layer never imports a higher one"
                )),
                Some(_) if !may.contains(import) => problems.push(format!(
                    "module `{module}` imports `{import}`, which its row in ARCHITECTURE.md does not allow"
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Strongly connected components of more than one module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    // Reachability is enough for a graph of two dozen nodes.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for next in graph.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|k| (k, reach(k))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for (a, from_a) in &reachable {
        let comp: BTreeSet<String> = from_a
            .iter()
            .filter(|b| reachable.get(b).is_some_and(|r| r.contains(*a)))
            .cloned()
            .collect();
        if comp.len() > 1 && !out.contains(&comp) {
            out.push(comp);
        }
    }
    out
}

#[test]
fn modules_import_only_what_architecture_md_allows() {
    let page = architecture();
    let allowed = table(&page, "## Allowed imports inside `src/`");
    let actual = module_imports(&root().join("src"));
    let problems = violations(&allowed, &actual);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_only_cycle_is_channel_router_session() {
    let page = architecture();
    let allowed = table(&page, "## Allowed imports inside `src/`");
    let graph: BTreeMap<String, BTreeSet<String>> = allowed
        .iter()
        .map(|(m, (_, may))| (m.clone(), may.clone()))
        .collect();
    let expected: BTreeSet<String> = ["channel", "router", "session"].map(String::from).into();
    let found = cycles(&graph);
    assert_eq!(
        found,
        vec![expected],
        "cycles allowed by the table: {found:?}"
    );
    // And the code has no cycle the table does not (it imports a subset of the table).
    let actual = module_imports(&root().join("src"));
    for cycle in cycles(&actual) {
        assert!(
            cycle.is_subset(&["channel", "router", "session"].map(String::from).into()),
            "an import cycle outside the allowed one: {cycle:?}"
        );
    }
}

#[test]
fn the_checker_catches_a_forbidden_import() {
    let allowed = table(
        "## Allowed imports inside `src/`\n| module | layer | may import |\n|---|---|---|\n| status | 4 | |\n| session | 4 | status |\n| topology | 5 | session |\n",
        "## Allowed imports inside `src/`",
    );
    let code = "use std::sync::Arc;\n// crate::topology in a comment does not count\nuse crate::{\n    status::Status,\n    topology::{Parts, Topology},\n};\nfn f() { crate::session::x(); }\n";
    let found = imports(code);
    assert_eq!(
        found,
        ["session", "status", "topology"].map(String::from).into()
    );
    let actual = BTreeMap::from([("session".to_string(), found)]);
    let problems = violations(&allowed, &actual);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("a lower layer never imports a higher one")),
        "{problems:?}"
    );
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
        ("c".to_string(), BTreeSet::new()),
    ]);
    assert_eq!(
        cycles(&graph),
        vec![BTreeSet::from(["a".into(), "b".into()])]
    );
}
