//! Edits to the config file that keep its comments and layout: what `pincer agents
//! bind|unbind` do when no gateway is running.
//!
//! [`bind`] and [`unbind`] are pure text-to-text edits over a [`toml_edit::DocumentMut`];
//! [`edit_file`] reads a file, applies one of them and writes the result back atomically.
//! Only what an edit touches changes: every other byte of the file, comments and blank lines
//! included, comes back as it was (except that an edited file always ends with a newline),
//! and an edit that changes nothing returns its input unchanged, so [`edit_file`] does not
//! write.
//!
//! # The forms understood
//!
//! Bindings are read in every spelling TOML allows: `[[bindings]]` tables whose `match` is an
//! inline table (`match = { account = "x" }`), a `[bindings.match]` sub-table or dotted keys
//! (`match.account = "x"`), and the inline array `bindings = [{ agent = "a", match = { .. } }]`.
//! Two bindings are equal when their agents and their matches are, whatever the spelling.
//!
//! # Where a new binding goes
//!
//! A `[[bindings]]` table with `agent` and an inline `match` (keys `channel`, `account`, in
//! that order, only those given), placed right after the last existing binding, or at the
//! end of the file when there is none yet: after any comments that end the file, separated
//! from what comes before by one blank line. When the file spells its bindings as an inline
//! array, the new one is appended to that array.
//!
//! # What a removed binding takes with it
//!
//! A removed `[[bindings]]` table takes its own comment: the comment lines directly above its
//! header, with no blank line between them and the header. Comments further up (separated by
//! a blank line, such as a `# Bindings` section heading) stay, moved in front of whatever now
//! follows, and the blank line that separated the removed table from its neighbours is kept
//! once. Removing the last binding removes the `bindings` key itself, leaving no empty
//! `bindings = []` behind. In the inline-array form an entry takes everything between the
//! previous entry and itself, comments included.
//!
//! A file whose lines all end in CRLF keeps CRLF; new lines follow the file's line endings.
//!
//! JSON and JSON5 config files cannot be edited this way: [`edit_file`] refuses them with
//! [`EditError::NotToml`].
//!
//! Needs `toml_edit`'s `parse` and `display` features.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pincer_core::fs::Access;

use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// The root key holding the bindings.
const BINDINGS: &str = "bindings";

/// What a binding targets from the CLI: `--account ACC`, or `--bind CHANNEL[:ACCOUNT]`.
///
/// An empty string counts as not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindTarget {
    /// Channel kind (`telegram`, `discord`, `web`, `http`): the binding's `match.channel`.
    pub channel: Option<String>,
    /// Account id: the binding's `match.account`.
    pub account: Option<String>,
}

/// Why a config edit failed. Nothing was written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The text is not valid TOML.
    #[error("invalid TOML at line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error, in characters.
        column: usize,
        /// What the parser found or expected.
        message: String,
    },
    /// A JSON or JSON5 config file, which cannot be edited keeping its comments.
    #[error(
        "{} is a JSON config file, which cannot be edited keeping its comments: edit it by \
         hand, or move the config to a TOML file",
        .0.display()
    )]
    NotToml(PathBuf),
    /// The TOML is valid but the edit cannot be made, e.g. `bindings` is not an array of
    /// tables. The text says what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// A binding target with neither a channel nor an account.
    #[error("a binding target needs a channel or an account")]
    EmptyTarget,
    /// A `--bind` value that is not `CHANNEL[:ACCOUNT]`.
    #[error("`{input}` is not CHANNEL[:ACCOUNT]: {reason}")]
    BadBind {
        /// The value as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`unbind`] was given neither a target nor `all`, so nothing says which bindings go.
    #[error("no bindings selected: name a target, or ask for all of them")]
    NoSelection,
    /// Reading, resolving or writing the config file failed.
    #[error("cannot {action} {}", .path.display())]
    Io {
        /// What was being done: `read`, `resolve`, `write`, ...
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A comparable form of a TOML value: inline tables and sub-tables alike become `Table`,
/// decor and quoting style are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Norm {
    Str(String),
    Table(BTreeMap<String, Norm>),
    Array(Vec<Norm>),
    /// Any other value, as its trimmed TOML text.
    Other(String),
}

/// How a document spells its bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// No `bindings` key.
    Absent,
    /// `[[bindings]]` tables.
    Tables,
    /// `bindings = [{ .. }, ..]`.
    Inline,
}

/// One step from a table to a nested one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A table that is rendered with a header, where it is rendered.
#[derive(Debug, Clone)]
struct Placed {
    /// Sort key of the rendering: tables print in this order.
    pos: isize,
    /// How to reach it from the root.
    loc: Vec<Step>,
    /// The index of the `[[bindings]]` entry it is part of, if any.
    binding: Option<usize>,
}

// === impl BindTarget ===

impl BindTarget {
    /// A target naming only an account (the `--account` form).
    pub fn account(account: impl Into<String>) -> Self {
        Self {
            channel: None,
            account: Some(account.into()),
        }
    }

    /// Parses `CHANNEL[:ACCOUNT]` (the `--bind` form); error on empty parts.
    ///
    /// The text is split at the first `:`, so an account id may itself hold colons. Each
    /// part is trimmed of surrounding whitespace.
    pub fn parse_bind(s: &str) -> Result<Self, EditError> {
        let bad = |reason| EditError::BadBind {
            input: s.to_owned(),
            reason,
        };
        let (channel, account) = match s.split_once(':') {
            Some((channel, account)) => (channel.trim(), Some(account.trim())),
            None => (s.trim(), None),
        };
        if channel.is_empty() {
            return Err(bad("the channel is empty"));
        }
        if account == Some("") {
            return Err(bad("the account after `:` is empty"));
        }
        Ok(Self {
            channel: Some(channel.to_owned()),
            account: account.map(str::to_owned),
        })
    }

    /// True when the target names neither a channel nor an account.
    pub fn is_empty(&self) -> bool {
        self.fields().next().is_none()
    }

    /// The `match` keys this target sets, in the order they are written.
    fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [("channel", &self.channel), ("account", &self.account)]
            .into_iter()
            .filter_map(|(key, value)| value.as_deref().filter(|v| !v.is_empty()).map(|v| (key, v)))
    }

    /// The `match` a binding for this target has, in comparable form.
    fn norm(&self) -> Norm {
        Norm::Table(
            self.fields()
                .map(|(key, value)| (key.to_owned(), Norm::Str(value.to_owned())))
                .collect(),
        )
    }

    /// The `match` a binding for this target has, as written.
    fn to_inline(&self) -> InlineTable {
        let mut table = InlineTable::new();
        for (key, value) in self.fields() {
            table.insert(key, value.into());
        }
        table
    }
}

// === bind and unbind ===

/// Appends `[[bindings]] agent = .. match = { channel = .., account = .. }` (inline table,
/// keys in that order, only those given) unless an equal binding (same agent, same match
/// after normalising inline-table vs sub-table form) already exists. Returns true when it
/// added one. Works when the file has no bindings yet, and on an empty file.
///
/// When nothing is added the text is returned unchanged. See the module docs for where the
/// new binding is placed. Errors: [`EditError::EmptyTarget`], [`EditError::Invalid`] for an
/// empty agent id or a `bindings` key of the wrong shape, [`EditError::Parse`].
pub fn bind(text: &str, agent: &str, target: &BindTarget) -> Result<(String, bool), EditError> {
    if target.is_empty() {
        return Err(EditError::EmptyTarget);
    }
    if agent.trim().is_empty() {
        return Err(EditError::Invalid("the agent id is empty".to_owned()));
    }
    let mut doc = parse(&lf_text(text))?;
    let shape = shape(&doc)?;
    let wanted = target.norm();
    let exists = entries(&doc)
        .into_iter()
        .any(|(a, m)| a.as_deref() == Some(agent) && m == wanted);
    if exists {
        return Ok((text.to_owned(), false));
    }
    match shape {
        Shape::Inline => push_inline(&mut doc, agent, target),
        Shape::Absent | Shape::Tables => push_table(&mut doc, agent, target),
    }
    Ok((with_eol_of(text, doc.to_string()), true))
}

/// Removes bindings: with `agent` Some, only that agent's; with `target` Some, only those
/// whose match equals the target's channel/account exactly (other match fields, e.g. peer,
/// make it not equal); `all` = every binding of `agent` (or every binding at all when agent
/// is None). Returns the new text and how many were removed. Removing the last one leaves no
/// empty `bindings = []` behind.
///
/// `all` only matters without a target: with both, the target still decides. When nothing
/// is removed the text is returned unchanged. What happens to the removed bindings' comments
/// is in the module docs. Errors: [`EditError::NoSelection`] with neither a target nor `all`,
/// [`EditError::EmptyTarget`], [`EditError::Invalid`] for a `bindings` key of the wrong
/// shape, [`EditError::Parse`].
pub fn unbind(
    text: &str,
    agent: Option<&str>,
    target: Option<&BindTarget>,
    all: bool,
) -> Result<(String, usize), EditError> {
    match target {
        Some(target) if target.is_empty() => return Err(EditError::EmptyTarget),
        None if !all => return Err(EditError::NoSelection),
        _ => {}
    }
    let mut doc = parse(&lf_text(text))?;
    let wanted = target.map(BindTarget::norm);
    let selected = |binding: &dyn TableLike| {
        let (a, m) = entry(binding);
        agent.is_none_or(|agent| a.as_deref() == Some(agent))
            && wanted.as_ref().is_none_or(|wanted| *wanted == m)
    };
    let removed = match shape(&doc)? {
        Shape::Absent => 0,
        Shape::Tables => remove_tables(&mut doc, selected),
        Shape::Inline => remove_inline(&mut doc, selected),
    };
    if removed == 0 {
        return Ok((text.to_owned(), 0));
    }
    Ok((with_eol_of(text, doc.to_string()), removed))
}

/// Adds `[channels.<kind>.accounts.<id>]` with `token` (written as given: a short ref such
/// as `env:TELEGRAM_TOKEN`, or plaintext) and, when given, `apiBase` and `mode`. Refuses an
/// id that is already an account of any channel ([`EditError::Invalid`]): account ids are
/// unique across channels.
pub fn add_account(
    text: &str,
    kind: &str,
    id: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Result<(String, ()), EditError> {
    if id.trim().is_empty() || id.contains(['.', '/', ' ']) {
        return Err(EditError::Invalid(format!(
            "`{id}` is not a valid account id (no dots, slashes or spaces)"
        )));
    }
    let mut doc = parse(&lf_text(text))?;
    let channels = doc
        .entry("channels")
        .or_insert_with(implicit_table)
        .as_table_like_mut()
        .ok_or_else(|| EditError::Invalid("`channels` is not a table".to_owned()))?;
    for (other, item) in channels.iter() {
        let taken = item
            .as_table_like()
            .and_then(|t| t.get("accounts"))
            .and_then(Item::as_table_like)
            .is_some_and(|accounts| accounts.contains_key(id));
        if taken {
            return Err(EditError::Invalid(format!(
                "account `{id}` already exists (channels.{other}.accounts.{id})"
            )));
        }
    }
    let accounts = channels
        .entry(kind)
        .or_insert(implicit_table())
        .as_table_like_mut()
        .ok_or_else(|| EditError::Invalid(format!("`channels.{kind}` is not a table")))?
        .entry("accounts")
        .or_insert(implicit_table())
        .as_table_like_mut()
        .ok_or_else(|| EditError::Invalid(format!("`channels.{kind}.accounts` is not a table")))?;
    let mut account = Table::new();
    account.insert("token", toml_edit::value(token));
    for (key, value) in extra {
        account.insert(key, toml_edit::value(*value));
    }
    accounts.insert(id, Item::Table(account));
    Ok((with_eol_of(text, doc.to_string()), ()))
}

fn implicit_table() -> Item {
    let mut t = Table::new();
    t.set_implicit(true);
    Item::Table(t)
}

// === edit_file ===

/// Reads the file (missing file = empty text), refuses non-TOML extensions (.json, .json5)
/// with NotToml, applies `edit`, and writes atomically (temp file in the same dir + rename,
/// keeping the original file's permissions) only if the text changed.
///
/// Returns what `edit` returned beside the text, e.g. `edit_file(path, |t| bind(t, agent,
/// &target))` gives whether a binding was added. The extension rule is the config loader's:
/// `.json` and `.json5` are JSON, anything else is TOML.
///
/// A symlink is followed and its target rewritten. The new file keeps the original's
/// permissions and, where the process may set them, its owner and group; a file that did
/// not exist is created with the process's default permissions. Errors from `edit` are
/// returned as they are; [`EditError::Io`] when reading or writing fails.
pub fn edit_file<T>(
    path: &Path,
    edit: impl FnOnce(&str) -> Result<(String, T), EditError>,
) -> Result<T, EditError> {
    if matches!(
        path.extension().and_then(OsStr::to_str),
        Some("json" | "json5")
    ) {
        return Err(EditError::NotToml(path.to_owned()));
    }
    let path = resolve(path)?;
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_error("read", &path)(e)),
    };
    let (new_text, out) = edit(&text)?;
    if new_text != text {
        pincer_core::fs::write_atomic(&path, new_text.as_bytes(), Access::Keep)
            .map_err(io_error("write", &path))?;
    }
    Ok(out)
}

/// Follows a symlink, so that the rename replaces the file it points to, not the link.
fn resolve(path: &Path) -> Result<PathBuf, EditError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(io_error("resolve", path))
        }
        _ => Ok(path.to_owned()),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EditError {
    let path = path.to_owned();
    move |source| EditError::Io {
        action,
        path,
        source,
    }
}

// === reading ===

/// Parses the text, turning the parser's byte span into a line and column.
fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let at = e.span().map_or(text.len(), |span| span.start);
        let (line, column) = line_col(text, at);
        EditError::Parse {
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// How the document spells its bindings; an error when `bindings` is something else.
fn shape(doc: &DocumentMut) -> Result<Shape, EditError> {
    match doc.get(BINDINGS) {
        None => Ok(Shape::Absent),
        Some(Item::ArrayOfTables(_)) => Ok(Shape::Tables),
        Some(Item::Value(Value::Array(array))) => {
            match array.iter().position(|v| !v.is_inline_table()) {
                Some(i) => Err(EditError::Invalid(format!(
                    "`bindings` entry {} is a {}, not a table",
                    i + 1,
                    array.get(i).map_or("value", Value::type_name)
                ))),
                None => Ok(Shape::Inline),
            }
        }
        Some(other) => Err(EditError::Invalid(format!(
            "`bindings` is a {}, not an array of tables (`[[bindings]]`)",
            other.type_name()
        ))),
    }
}

/// Every binding's agent and normalised match, in either spelling.
fn entries(doc: &DocumentMut) -> Vec<(Option<String>, Norm)> {
    match doc.get(BINDINGS) {
        Some(Item::ArrayOfTables(tables)) => tables.iter().map(|t| entry(t)).collect(),
        Some(Item::Value(Value::Array(array))) => array
            .iter()
            .filter_map(Value::as_inline_table)
            .map(|t| entry(t))
            .collect(),
        _ => Vec::new(),
    }
}

/// A binding's agent (when it is a string) and its normalised match (empty when absent).
fn entry(binding: &dyn TableLike) -> (Option<String>, Norm) {
    let agent = binding
        .get("agent")
        .and_then(Item::as_str)
        .map(str::to_owned);
    let matches = binding
        .get("match")
        .map_or_else(|| Norm::Table(BTreeMap::new()), norm_item);
    (agent, matches)
}

fn norm_item(item: &Item) -> Norm {
    match item {
        Item::Value(value) => norm_value(value),
        Item::Table(table) => norm_table(table),
        Item::ArrayOfTables(tables) => Norm::Array(tables.iter().map(|t| norm_table(t)).collect()),
        Item::None => Norm::Other(String::new()),
    }
}

fn norm_table(table: &dyn TableLike) -> Norm {
    Norm::Table(
        table
            .iter()
            .map(|(key, item)| (key.to_owned(), norm_item(item)))
            .collect(),
    )
}

fn norm_value(value: &Value) -> Norm {
    match value {
        Value::String(s) => Norm::Str(s.value().clone()),
        Value::InlineTable(table) => norm_table(table),
        Value::Array(array) => Norm::Array(array.iter().map(norm_value).collect()),
        other => Norm::Other(other.to_string().trim().to_owned()),
    }
}

/// The tables rendered with a header, mirroring how `toml_edit` orders them on output: by
/// position, a table without one sorting with the table visited before it.
fn placed_tables(doc: &DocumentMut) -> Vec<Placed> {
    fn walk(
        table: &Table,
        is_array: bool,
        loc: &mut Vec<Step>,
        last: &mut isize,
        out: &mut Vec<Placed>,
    ) {
        if !table.is_dotted() {
            if let Some(pos) = table.position() {
                *last = pos;
            }
            let visible = is_array || !(table.is_implicit() && table.get_values().is_empty());
            if !loc.is_empty() && visible {
                let binding = match loc.as_slice() {
                    [Step::Key(key), Step::Index(i), ..] if key == BINDINGS => Some(*i),
                    _ => None,
                };
                out.push(Placed {
                    pos: *last,
                    loc: loc.clone(),
                    binding,
                });
            }
        }
        for (key, item) in table.iter() {
            match item {
                Item::Table(child) => {
                    loc.push(Step::Key(key.to_owned()));
                    walk(child, false, loc, last, out);
                    loc.pop();
                }
                Item::ArrayOfTables(children) => {
                    for (i, child) in children.iter().enumerate() {
                        loc.push(Step::Key(key.to_owned()));
                        loc.push(Step::Index(i));
                        walk(child, true, loc, last, out);
                        loc.pop();
                        loc.pop();
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(doc.as_table(), false, &mut Vec::new(), &mut 0, &mut out);
    out
}

/// The table at `loc`, if it is still there.
fn table_at_mut<'d>(doc: &'d mut DocumentMut, loc: &[Step]) -> Option<&'d mut Table> {
    let mut table = doc.as_table_mut();
    let mut steps = loc.iter();
    while let Some(step) = steps.next() {
        let Step::Key(key) = step else { return None };
        table = match table.get_mut(key)? {
            Item::Table(child) => child,
            Item::ArrayOfTables(children) => match steps.next() {
                Some(Step::Index(i)) => children.get_mut(*i)?,
                _ => return None,
            },
            _ => return None,
        };
    }
    Some(table)
}

// === adding ===

/// Appends a `[[bindings]]` table after the last binding, or at the end of the document.
fn push_table(doc: &mut DocumentMut, agent: &str, target: &BindTarget) {
    let placed = placed_tables(doc);
    let last_any = placed.iter().map(|p| p.pos).max();
    let last_binding = placed
        .iter()
        .filter(|p| p.binding.is_some())
        .map(|p| p.pos)
        .max();
    // A new table with the last binding's position prints right after it: `toml_edit` sorts
    // stably and visits the new table after every existing binding.
    let (pos, at_end) = match last_binding {
        Some(pos) => (pos, Some(pos) >= last_any),
        None => (last_any.unwrap_or(0) + 1, true),
    };
    let prefix = if at_end {
        let nothing_before = doc.get_values().is_empty() && placed.is_empty();
        let prefix = prefix_from_trailing(doc.trailing().as_str().unwrap_or(""), nothing_before);
        doc.set_trailing("");
        prefix
    } else {
        "\n".to_owned()
    };
    let mut table = Table::new();
    table.set_position(Some(pos));
    table.decor_mut().set_prefix(prefix);
    table.insert("agent", toml_edit::value(agent));
    table.insert("match", toml_edit::value(target.to_inline()));
    match doc.get_mut(BINDINGS) {
        Some(Item::ArrayOfTables(tables)) => tables.push(table),
        _ => {
            let mut tables = ArrayOfTables::new();
            tables.push(table);
            doc.insert(BINDINGS, Item::ArrayOfTables(tables));
        }
    }
}

/// The prefix of a table appended at the end of the document, which takes over the
/// document's trailing comments so that the table really is last: those comments, then one
/// blank line. Whitespace alone becomes one blank line, or nothing in an empty document.
fn prefix_from_trailing(trailing: &str, nothing_before: bool) -> String {
    if trailing.trim().is_empty() {
        return if nothing_before { "" } else { "\n" }.to_owned();
    }
    let mut prefix = trailing.to_owned();
    if !prefix.ends_with('\n') {
        prefix.push('\n');
    }
    if !ends_with_blank_line(&prefix) {
        prefix.push('\n');
    }
    prefix
}

/// Appends an entry to an inline `bindings = [..]`, spaced like the entry before it.
fn push_inline(doc: &mut DocumentMut, agent: &str, target: &BindTarget) {
    let Some(Item::Value(Value::Array(array))) = doc.get_mut(BINDINGS) else {
        return;
    };
    let mut entry = InlineTable::new();
    entry.insert("agent", agent.into());
    entry.insert("match", Value::InlineTable(target.to_inline()));
    let mut value = Value::InlineTable(entry);
    let prefix = array
        .iter()
        .last()
        .map(|last| last.decor().prefix().and_then(|p| p.as_str()).unwrap_or(""));
    match prefix {
        Some(prefix) => {
            let prefix = if prefix.is_empty() { " " } else { prefix }.to_owned();
            value.decor_mut().set_prefix(prefix);
            value.decor_mut().set_suffix("");
            array.push_formatted(value);
        }
        None => array.push(value),
    }
}

// === removing ===

/// Removes the selected `[[bindings]]` tables, first to last, and the key when none is left.
fn remove_tables(doc: &mut DocumentMut, selected: impl Fn(&dyn TableLike) -> bool) -> usize {
    let mut removed = 0;
    let mut i = 0;
    while let Some(Item::ArrayOfTables(tables)) = doc.get(BINDINGS) {
        let Some(table) = tables.get(i) else { break };
        if selected(table) {
            remove_table(doc, i);
            removed += 1;
        } else {
            i += 1;
        }
    }
    if let Some(Item::ArrayOfTables(tables)) = doc.get(BINDINGS)
        && tables.is_empty()
    {
        doc.remove(BINDINGS);
    }
    removed
}

/// Removes `[[bindings]]` entry `index` with its own comment, handing the rest of its
/// prefix (section comments, the separating blank line) to whatever prints next.
fn remove_table(doc: &mut DocumentMut, index: usize) {
    let placed = placed_tables(doc);
    let own_loc = [Step::Key(BINDINGS.to_owned()), Step::Index(index)];
    let Some(me) = placed.iter().find(|p| p.loc == own_loc) else {
        return;
    };
    let others = || placed.iter().filter(|p| p.binding != Some(index));
    let at_start = doc.get_values().is_empty() && !others().any(|p| p.pos < me.pos);
    let next = others()
        .filter(|p| p.pos > me.pos)
        .min_by_key(|p| p.pos)
        .map(|p| p.loc.clone());
    let prefix = match doc.get(BINDINGS) {
        Some(Item::ArrayOfTables(tables)) => tables.get(index).map(decor_prefix),
        _ => None,
    }
    .unwrap_or_default();
    let (kept, _own) = split_prefix(&prefix);
    // Hand over before removing, while `next` still points at the right table.
    hand_over(doc, kept, at_start, next.as_deref());
    if let Some(Item::ArrayOfTables(tables)) = doc.get_mut(BINDINGS) {
        tables.remove(index);
    }
}

/// Removes the selected entries of an inline `bindings = [..]`, and the key when none is
/// left.
fn remove_inline(doc: &mut DocumentMut, selected: impl Fn(&dyn TableLike) -> bool) -> usize {
    let Some(Item::Value(Value::Array(array))) = doc.get_mut(BINDINGS) else {
        return 0;
    };
    let mut removed = 0;
    let mut i = 0;
    while i < array.len() {
        let hit = array
            .get(i)
            .and_then(Value::as_inline_table)
            .is_some_and(|t| selected(t));
        if !hit {
            i += 1;
            continue;
        }
        let gone = array.remove(i);
        removed += 1;
        // On one line (`[ {a}, {b} ]`) the new first entry takes the old one's spacing.
        if i == 0
            && let Some(first) = array.get_mut(0)
        {
            let own = first
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("");
            if !own.contains('\n') {
                let before = gone.decor().prefix().and_then(|p| p.as_str()).unwrap_or("");
                let spacing = before.rfind('\n').map_or(before, |nl| &before[nl..]);
                first.decor_mut().set_prefix(spacing.to_owned());
            }
        }
    }
    if removed > 0 && array.is_empty() {
        remove_root_value(doc, BINDINGS);
    }
    removed
}

/// Removes a root key-value with its own comment, handing the rest of its prefix to the
/// next root value, else the first table, else the end of the document.
fn remove_root_value(doc: &mut DocumentMut, key: &str) {
    let prefix = doc
        .key(key)
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_owned();
    let (kept, _own) = split_prefix(&prefix);
    let keys: Vec<(String, bool)> = doc
        .iter()
        .map(|(k, item)| (k.to_owned(), item.is_value()))
        .collect();
    let me = keys.iter().position(|(k, _)| k == key).unwrap_or(0);
    let at_start = !keys[..me].iter().any(|(_, is_value)| *is_value);
    let next_value = keys[me + 1..]
        .iter()
        .find(|(_, is_value)| *is_value)
        .map(|(k, _)| k.clone());
    match next_value {
        Some(next) => {
            if let Some(mut next) = doc.key_mut(&next) {
                let decor = next.leaf_decor_mut();
                let old = decor.prefix().and_then(|p| p.as_str()).unwrap_or("");
                let merged = merge(kept, old, at_start);
                decor.set_prefix(merged);
            }
        }
        None => {
            let first_table = placed_tables(doc)
                .into_iter()
                .min_by_key(|p| p.pos)
                .map(|p| p.loc);
            hand_over(doc, kept, at_start, first_table.as_deref());
        }
    }
    doc.remove(key);
}

/// Gives `kept` (the part of a removed item's prefix that is not its own) to the table at
/// `next`, or to the document's trailing text when nothing follows.
fn hand_over(doc: &mut DocumentMut, kept: &str, at_start: bool, next: Option<&[Step]>) {
    match next.and_then(|loc| table_at_mut(doc, loc)) {
        Some(table) => {
            let old = decor_prefix(table);
            table.decor_mut().set_prefix(merge(kept, &old, at_start));
        }
        None => {
            let old = doc.trailing().as_str().unwrap_or("").to_owned();
            doc.set_trailing(merge_end(kept, &old, at_start));
        }
    }
}

/// The prefix of what follows a removed item: the kept part of the removed item's prefix,
/// then the follower's own prefix without the blank lines that separated it from the
/// removed item (`kept` ends with its own). At the start of the document those blank lines
/// go too.
fn merge(kept: &str, next: &str, at_start: bool) -> String {
    if kept.is_empty() && !at_start {
        next.to_owned()
    } else {
        format!("{kept}{}", strip_leading_blank_lines(next))
    }
}

/// Like [`merge`] for the end of the document, where blank lines that would end the file
/// are dropped.
fn merge_end(kept: &str, trailing: &str, at_start: bool) -> String {
    if kept.is_empty() && !at_start {
        return trailing.to_owned();
    }
    let rest = strip_leading_blank_lines(trailing);
    if rest.is_empty() {
        trim_trailing_blank_lines(kept).to_owned()
    } else {
        format!("{kept}{rest}")
    }
}

fn decor_prefix(table: &Table) -> String {
    table
        .decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_owned()
}

// === text helpers ===

/// True when every line of `text` ends in CRLF. `toml_edit` ends each line it prints with
/// LF, so such a text is edited as LF and turned back to keep it byte for byte.
fn is_crlf(text: &str) -> bool {
    text.contains("\r\n") && text.matches('\n').count() == text.matches("\r\n").count()
}

/// The text to parse: LF line endings when the text uses CRLF throughout.
fn lf_text(text: &str) -> Cow<'_, str> {
    if is_crlf(text) {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `edited` with the line endings of `original`.
fn with_eol_of(original: &str, edited: String) -> String {
    if is_crlf(original) {
        edited.replace('\n', "\r\n")
    } else {
        edited
    }
}
//
// A prefix starts at the beginning of a line and ends just before the item it decorates.

fn is_blank_line(line: &str) -> bool {
    line.ends_with('\n') && line.trim().is_empty()
}

/// Splits a prefix after its last blank line: (what is kept, the item's own comment).
fn split_prefix(prefix: &str) -> (&str, &str) {
    let mut cut = 0;
    let mut end = 0;
    for line in prefix.split_inclusive('\n') {
        end += line.len();
        if is_blank_line(line) {
            cut = end;
        }
    }
    prefix.split_at(cut)
}

fn strip_leading_blank_lines(text: &str) -> &str {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if !is_blank_line(line) {
            break;
        }
        start += line.len();
    }
    &text[start..]
}

fn trim_trailing_blank_lines(text: &str) -> &str {
    let mut end = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        at += line.len();
        if !line.trim().is_empty() {
            end = at;
        }
    }
    &text[..end]
}

fn ends_with_blank_line(text: &str) -> bool {
    text.split_inclusive('\n')
        .next_back()
        .is_some_and(is_blank_line)
}

// === secrets ===

/// Splits a dotted config key (`providers.openai.apiKeys[1]`) into steps.
fn key_steps(key: &str) -> Vec<Result<&str, usize>> {
    let mut steps = Vec::new();
    for part in key.split('.') {
        match part.split_once('[') {
            Some((name, rest)) => {
                steps.push(Ok(name));
                if let Ok(n) = rest.trim_end_matches(']').parse::<usize>() {
                    steps.push(Err(n));
                }
            }
            None => steps.push(Ok(part)),
        }
    }
    steps
}

fn item_at<'a>(doc: &'a DocumentMut, key: &str) -> Option<&'a Item> {
    let mut item = doc.as_item();
    for step in key_steps(key) {
        item = match step {
            Ok(name) => item.get(name)?,
            Err(n) => item.get(n)?,
        };
    }
    Some(item)
}

/// The string written at `key` in the file, if the file itself has one there (a value
/// inherited or set by the environment is not in the file).
pub fn string_at(text: &str, key: &str) -> Option<String> {
    let doc = parse(&lf_text(text)).ok()?;
    item_at(&doc, key)?.as_str().map(str::to_string)
}

/// Whether the file has a table (a `{ source, id }` ref) at `key`.
pub fn table_at(text: &str, key: &str) -> bool {
    parse(&lf_text(text))
        .ok()
        .and_then(|doc| item_at(&doc, key).map(Item::is_table_like))
        .unwrap_or(false)
}

/// Replaces the string at `key` with the inline table `fields` (a secret ref). Returns
/// whether the file had a string there to replace.
pub fn replace_with_ref(
    text: &str,
    key: &str,
    fields: &[(&str, &str)],
) -> Result<(String, bool), EditError> {
    let mut doc = parse(&lf_text(text))?;
    let mut item = doc.as_item_mut();
    for step in key_steps(key) {
        let next = match step {
            Ok(name) => item.get_mut(name),
            Err(n) => item.get_mut(n),
        };
        match next {
            Some(next) => item = next,
            None => return Ok((text.to_string(), false)),
        }
    }
    let Some(old) = item.as_value() else {
        return Ok((text.to_string(), false));
    };
    if !old.is_str() {
        return Ok((text.to_string(), false));
    }
    let decor = old.decor().clone();
    let mut table = InlineTable::new();
    for (k, v) in fields {
        table.insert(*k, Value::from(*v));
    }
    let mut value = Value::InlineTable(table);
    *value.decor_mut() = decor;
    *item = Item::Value(value);
    Ok((with_eol_of(text, doc.to_string()), true))
}

/// Writes `[secrets.providers.<alias>]` with `fields` (replacing an alias of that name).
pub fn set_secrets_provider(
    text: &str,
    alias: &str,
    fields: &[(&str, Value)],
) -> Result<(String, bool), EditError> {
    if alias.trim().is_empty() || alias.contains(['.', '/', ' ']) {
        return Err(EditError::Invalid(format!(
            "`{alias}` is not a valid alias (no dots, slashes or spaces)"
        )));
    }
    let mut doc = parse(&lf_text(text))?;
    let providers = doc
        .entry("secrets")
        .or_insert_with(implicit_table)
        .as_table_like_mut()
        .ok_or_else(|| EditError::Invalid("`secrets` is not a table".to_owned()))?
        .entry("providers")
        .or_insert(implicit_table())
        .as_table_like_mut()
        .ok_or_else(|| EditError::Invalid("`secrets.providers` is not a table".to_owned()))?;
    let replaced = providers.contains_key(alias);
    let mut table = Table::new();
    for (k, v) in fields {
        table.insert(k, Item::Value(v.clone()));
    }
    providers.insert(alias, Item::Table(table));
    Ok((with_eol_of(text, doc.to_string()), replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` back, failing the test when an edit produced invalid TOML.
    fn reparse(text: &str) -> DocumentMut {
        match text.parse::<DocumentMut>() {
            Ok(doc) => doc,
            Err(e) => panic!("edited text does not parse: {e}\n{text}"),
        }
    }

    fn bind_ok(text: &str, agent: &str, target: &BindTarget) -> (String, bool) {
        let out = bind(text, agent, target).expect("bind");
        reparse(&out.0);
        out
    }

    fn unbind_ok(
        text: &str,
        agent: Option<&str>,
        target: Option<&BindTarget>,
        all: bool,
    ) -> (String, usize) {
        let out = unbind(text, agent, target, all).expect("unbind");
        reparse(&out.0);
        out
    }

    fn target(bind: &str) -> BindTarget {
        BindTarget::parse_bind(bind).expect("valid --bind")
    }

    fn comment_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .collect()
    }

    const HOME: &str = include_str!("../../config/examples/home.toml");

    const COMMENTED: &str = r#"# Pincer config.

[agents.research-bot]   # the researcher
systemPrompt = "Cite sources."  # keep it short

# Bindings: who answers what.

# The researcher's own bot.
[[bindings]]
agent = "research-bot"
match = { account = "telegram-research" }

[[bindings]]
agent = "family"
[bindings.match]
account = "telegram-family"
peer = { kind = "group", id = "-100" }

# end of file
"#;

    #[test]
    fn bind_into_empty_file() {
        let (out, added) = bind_ok("", "research-bot", &BindTarget::account("tg-research"));
        assert!(added);
        assert_eq!(
            out,
            "[[bindings]]\nagent = \"research-bot\"\nmatch = { account = \"tg-research\" }\n"
        );
    }

    #[test]
    fn bind_into_file_without_bindings_appends_at_the_end() {
        let text = "# top\n[agents.a]\nx = 1 # why\n";
        let (out, added) = bind_ok(text, "a", &target("telegram:acc"));
        assert!(added);
        assert_eq!(
            out,
            format!(
                "{text}\n[[bindings]]\nagent = \"a\"\nmatch = {{ channel = \"telegram\", account = \"acc\" }}\n"
            )
        );
    }

    #[test]
    fn bind_keeps_every_comment_and_the_rest_of_the_file() {
        let (out, added) = bind_ok(COMMENTED, "devops-bot", &target("discord:ops"));
        assert!(added);
        for line in comment_lines(COMMENTED) {
            assert!(out.contains(line), "lost {line:?}:\n{out}");
        }
        // The binding goes after the trailing comment, so the file is the original plus it.
        let block = r#"
[[bindings]]
agent = "devops-bot"
match = { channel = "discord", account = "ops" }
"#;
        assert_eq!(out, format!("{COMMENTED}{block}"));
    }

    #[test]
    fn bind_goes_right_after_the_last_binding() {
        let text = r#"[[bindings]]
agent = "a"
match = { account = "x" }

# agents
[agents.a]
k = 1
"#;
        let (out, added) = bind_ok(text, "b", &BindTarget::account("y"));
        assert!(added);
        assert_eq!(
            out,
            r#"[[bindings]]
agent = "a"
match = { account = "x" }

[[bindings]]
agent = "b"
match = { account = "y" }

# agents
[agents.a]
k = 1
"#
        );
    }

    #[test]
    fn duplicate_bind_is_a_no_op() {
        let (out, added) = bind_ok(HOME, "family", &BindTarget::account("telegram-family"));
        assert!(!added);
        assert_eq!(out, HOME);
        // Same match, another agent: not a duplicate.
        let (_, added) = bind_ok(
            HOME,
            "research-bot",
            &BindTarget::account("telegram-family"),
        );
        assert!(added);
    }

    #[test]
    fn bind_then_unbind_gives_back_the_original() {
        let target = target("web:zz");
        for text in ["", "x = 1\n", HOME, COMMENTED] {
            let (bound, added) = bind_ok(text, "new-agent", &target);
            assert!(added);
            let (out, removed) = unbind_ok(&bound, Some("new-agent"), Some(&target), false);
            assert_eq!((out.as_str(), removed), (text, 1), "bound:\n{bound}");
        }
    }

    #[test]
    fn crlf_files_keep_crlf() {
        let text = "# c\r\n[agents.a]\r\nx = 1 # k\r\n\r\n[[bindings]]\r\nagent = \"a\"\r\n";
        let (out, added) = bind_ok(text, "b", &BindTarget::account("y"));
        assert!(added);
        let block = "\r\n[[bindings]]\r\nagent = \"b\"\r\nmatch = { account = \"y\" }\r\n";
        assert_eq!(out, format!("{text}{block}"));
        let (out, removed) = unbind_ok(&out, Some("b"), None, true);
        assert_eq!((out.as_str(), removed), (text, 1));
    }

    #[test]
    fn sub_table_and_dotted_forms_are_recognised_as_duplicates() {
        let sub = r#"[[bindings]]
agent = "a"
[bindings.match]
channel = 'telegram'
account = "x"
"#;
        let (out, added) = bind_ok(sub, "a", &target("telegram:x"));
        assert_eq!((out.as_str(), added), (sub, false));
        let dotted =
            "[[bindings]]\nagent = \"a\"\nmatch.account = \"x\"\nmatch.channel = \"telegram\"\n";
        let (out, added) = bind_ok(dotted, "a", &target("telegram:x"));
        assert_eq!((out.as_str(), added), (dotted, false));
        // A match with more fields (a peer) is another binding.
        let (_, added) = bind_ok(COMMENTED, "family", &BindTarget::account("telegram-family"));
        assert!(added);
    }

    #[test]
    fn bind_into_an_inline_array() {
        let text = "bindings = [\n  { agent = \"a\", match = { account = \"x\" } },\n]\n";
        let (out, added) = bind_ok(text, "b", &BindTarget::account("y"));
        assert!(added);
        assert_eq!(
            out,
            r#"bindings = [
  { agent = "a", match = { account = "x" } },
  { agent = "b", match = { account = "y" } },
]
"#
        );
        let (again, added) = bind_ok(&out, "b", &BindTarget::account("y"));
        assert_eq!((again.as_str(), added), (out.as_str(), false));
    }

    #[test]
    fn unbind_by_agent_all() {
        let (out, removed) = unbind_ok(HOME, Some("family"), None, true);
        assert_eq!(removed, 1);
        let expected = HOME.replace(
            "[[bindings]]\nagent = \"family\"\nmatch = { account = \"telegram-family\" }\n\n",
            "",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn unbind_by_target_needs_an_exact_match() {
        // The family binding also has a peer: an account-only target does not match it.
        let family = BindTarget::account("telegram-family");
        let (out, removed) = unbind_ok(COMMENTED, Some("family"), Some(&family), false);
        assert_eq!((out.as_str(), removed), (COMMENTED, 0));
        // Without an agent, the target alone selects.
        let research = BindTarget::account("telegram-research");
        let (out, removed) = unbind_ok(COMMENTED, None, Some(&research), false);
        assert_eq!(removed, 1);
        let doc = reparse(&out);
        let left: Vec<_> = doc["bindings"]
            .as_array_of_tables()
            .expect("bindings left")
            .iter()
            .map(|t| t["agent"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(left, ["family"]);
        // A channel-only target does not match a binding with a channel and an account.
        let text = "[[bindings]]\nagent = \"a\"\nmatch = { channel = \"web\", account = \"x\" }\n";
        let (_, removed) = unbind_ok(text, Some("a"), Some(&target("web")), false);
        assert_eq!(removed, 0);
        let (_, removed) = unbind_ok(text, Some("a"), Some(&target("web:x")), false);
        assert_eq!(removed, 1);
    }

    #[test]
    fn unbind_takes_its_own_comment_and_keeps_the_section_comment() {
        let research = BindTarget::account("telegram-research");
        let (out, removed) = unbind_ok(COMMENTED, Some("research-bot"), Some(&research), false);
        assert_eq!(removed, 1);
        let expected = COMMENTED.replace(
            r#"# The researcher's own bot.
[[bindings]]
agent = "research-bot"
match = { account = "telegram-research" }

"#,
            "",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn unbind_all_removes_every_binding_and_the_key() {
        let (out, removed) = unbind_ok(COMMENTED, None, None, true);
        assert_eq!(removed, 2);
        assert!(!out.contains("bindings]"), "{out}");
        assert!(!out.contains("bindings ="), "{out}");
        assert_eq!(
            out,
            r#"# Pincer config.

[agents.research-bot]   # the researcher
systemPrompt = "Cite sources."  # keep it short

# Bindings: who answers what.

# end of file
"#
        );
        let (out, removed) = unbind_ok(HOME, None, None, true);
        assert_eq!(removed, 3);
        assert_eq!(
            out,
            HOME.split("\n\n[[bindings]]")
                .next()
                .map(|s| format!("{s}\n"))
                .unwrap_or_default()
        );
    }

    #[test]
    fn unbind_the_only_binding_of_a_file() {
        let text = "[[bindings]]\nagent = \"a\"\nmatch = { account = \"x\" }\n";
        let (out, removed) = unbind_ok(text, Some("a"), None, true);
        assert_eq!((out.as_str(), removed), ("", 1));
        // The first table goes: the next one does not start with a blank line.
        let text = "[[bindings]]\nagent = \"a\"\n\n[agents.a]\nk = 1\n";
        let (out, _) = unbind_ok(text, Some("a"), None, true);
        assert_eq!(out, "[agents.a]\nk = 1\n");
    }

    #[test]
    fn unbind_nothing_leaves_the_text_alone() {
        let (out, removed) = unbind_ok(HOME, Some("nobody"), None, true);
        assert_eq!((out.as_str(), removed), (HOME, 0));
        let (out, removed) = unbind_ok("# no bindings here\n", None, None, true);
        assert_eq!((out.as_str(), removed), ("# no bindings here\n", 0));
    }

    #[test]
    fn unbind_from_an_inline_array() {
        let text = r#"x = 1
# who answers
bindings = [ { agent = "a", match = { account = "x" } }, { agent = "b", match = { account = "y" } } ]
# y
y = 2
"#;
        let (out, removed) = unbind_ok(text, Some("a"), None, true);
        assert_eq!(removed, 1);
        assert_eq!(
            out,
            r#"x = 1
# who answers
bindings = [ { agent = "b", match = { account = "y" } } ]
# y
y = 2
"#
        );
        let (out, removed) = unbind_ok(&out, None, Some(&BindTarget::account("y")), false);
        assert_eq!(removed, 1);
        assert_eq!(out, "x = 1\n# y\ny = 2\n");
    }

    #[test]
    fn selection_errors() {
        assert!(matches!(
            unbind(HOME, Some("family"), None, false),
            Err(EditError::NoSelection)
        ));
        assert!(matches!(
            unbind(HOME, None, Some(&BindTarget::default()), true),
            Err(EditError::EmptyTarget)
        ));
        assert!(matches!(
            bind(HOME, "family", &BindTarget::default()),
            Err(EditError::EmptyTarget)
        ));
        assert!(matches!(
            bind(HOME, " ", &BindTarget::account("x")),
            Err(EditError::Invalid(_))
        ));
    }

    #[test]
    fn parse_bind_forms_and_errors() {
        assert_eq!(
            target("telegram"),
            BindTarget {
                channel: Some("telegram".into()),
                account: None
            }
        );
        assert_eq!(
            target("telegram:family"),
            BindTarget {
                channel: Some("telegram".into()),
                account: Some("family".into())
            }
        );
        assert_eq!(target(" web : a:b ").account.as_deref(), Some("a:b"));
        for bad in ["", ":", ":acc", "telegram:", "telegram: ", "  "] {
            let err = BindTarget::parse_bind(bad).expect_err(bad);
            assert!(matches!(err, EditError::BadBind { .. }), "{bad:?}: {err}");
            assert!(err.to_string().contains("CHANNEL[:ACCOUNT]"));
        }
    }

    #[test]
    fn invalid_toml_names_the_line() {
        let text = "[agents.a]\nx = 1\ny = = 2\n";
        let err = bind(text, "a", &BindTarget::account("x")).expect_err("invalid");
        assert!(
            matches!(
                err,
                EditError::Parse {
                    line: 3,
                    column: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("invalid TOML at line 3, column 5: "),
            "{err}"
        );
        let err = unbind("a = 1\na = 2\n", None, None, true).expect_err("duplicate key");
        assert!(matches!(err, EditError::Parse { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn bindings_of_the_wrong_shape_are_refused() {
        for text in [
            "bindings = \"x\"\n",
            "[bindings]\nagent = \"a\"\n",
            "bindings = [1]\n",
        ] {
            let err = bind(text, "a", &BindTarget::account("x")).expect_err(text);
            assert!(matches!(err, EditError::Invalid(_)), "{text:?}: {err:?}");
            assert!(err.to_string().contains("bindings"), "{err}");
            let err = unbind(text, None, None, true).expect_err(text);
            assert!(matches!(err, EditError::Invalid(_)), "{text:?}: {err:?}");
        }
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("pincer-config-edit-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .expect("read temp dir")
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn edit_file_refuses_json() {
        let dir = TempDir::new("json");
        for name in ["pincer.json", "pincer.json5"] {
            let path = dir.0.join(name);
            let err = edit_file(&path, |t| bind(t, "a", &BindTarget::account("x")))
                .expect_err("json refused");
            assert!(
                matches!(&err, EditError::NotToml(p) if *p == path),
                "{err:?}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(dir.entries().is_empty());
    }

    #[test]
    fn edit_file_creates_writes_only_on_change_and_leaves_no_temp_files() {
        let dir = TempDir::new("create");
        let path = dir.0.join("pincer.toml");
        let removed = edit_file(&path, |t| unbind(t, None, None, true)).expect("no-op");
        assert_eq!(removed, 0);
        assert!(!path.exists(), "a no-op edit must not create the file");
        let added = edit_file(&path, |t| bind(t, "a", &BindTarget::account("x"))).expect("bind");
        assert!(added);
        let text = fs::read_to_string(&path).expect("written");
        assert_eq!(
            text,
            "[[bindings]]\nagent = \"a\"\nmatch = { account = \"x\" }\n"
        );
        let added = edit_file(&path, |t| bind(t, "a", &BindTarget::account("x"))).expect("again");
        assert!(!added);
        assert_eq!(dir.entries(), ["pincer.toml"]);
        // Edit errors come back as they are and leave the file alone.
        let err =
            edit_file(&path, |t| unbind(t, Some("a"), None, false)).expect_err("no selection");
        assert!(matches!(err, EditError::NoSelection));
        assert_eq!(fs::read_to_string(&path).expect("still there"), text);
    }

    #[cfg(unix)]
    #[test]
    fn edit_file_keeps_mode_0600_and_follows_symlinks() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("mode");
        let real = dir.0.join("real.toml");
        fs::write(&real, HOME).expect("write");
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = dir.0.join("pincer.toml");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let removed =
            edit_file(&link, |t| unbind(t, Some("devops-bot"), None, true)).expect("unbind");
        assert_eq!(removed, 1);
        assert!(
            fs::symlink_metadata(&link)
                .expect("link")
                .file_type()
                .is_symlink()
        );
        let mode = fs::metadata(&real).expect("real").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&real).expect("read");
        assert!(!text.contains("devops-bot\"\nmatch"));
        assert!(text.starts_with("# A multi-agent home setup"));
        assert_eq!(dir.entries(), ["pincer.toml", "real.toml"]);
    }
}
