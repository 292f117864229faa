//! YAML (and JSON) loading with positions, behind limits that are enforced before the parser
//! sees the text, plus small typed accessors that turn a wrong shape into a positioned error.
//!
//! saphyr's `MarkedYaml` gives every node a span (1-based line, 0-based character column; we
//! report the column 1-based). Its loader recurses once per nesting level and expands aliases
//! by cloning, so three things happen before it runs:
//!
//! * documents are counted from the `---` markers at column 0;
//! * aliases (`*name` where a YAML token starts) are refused, so nothing can expand;
//! * a sound upper bound of the nesting depth is computed from the lines (see
//!   [`block_levels`]); the parser then runs on a thread whose stack is sized for that bound,
//!   and the exact depth is checked on the tree before anything else walks it.

use std::borrow::Cow;

use saphyr::{AnnotatedMapping, LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::error::{one_line, K8sError, Position};
use super::{MAX_DEPTH, MAX_DOCUMENTS, MAX_FILE_BYTES};
use crate::verify::source::Source;

/// A parsed node with its position.
pub(crate) type Node<'t> = MarkedYaml<'t>;
/// A parsed mapping (insertion-ordered).
pub(crate) type Map<'t> = AnnotatedMapping<'t, Node<'t>>;

/// The line-based depth bound refuses files whose bound exceeds this many block levels before
/// parsing (real manifests stay far below 64).
const MAX_BLOCK_LEVELS: usize = 1024;
/// Stack reserved per possible nesting level for the parser thread. saphyr's recursive loader
/// uses about 0.4 KiB per level in release builds and 2.5 KiB in debug builds; sanitizer builds
/// (fuzzing) use more.
const STACK_PER_LEVEL: usize = 8 * 1024;
/// Stack for everything that is not per level.
const STACK_BASE: usize = 1024 * 1024;
/// saphyr counts flow levels (`[`, `{`) in a `u8` and refuses more.
const MAX_FLOW_LEVELS: usize = 255;

/// Load every document of `text`, enforcing [`MAX_FILE_BYTES`], [`MAX_DOCUMENTS`],
/// [`MAX_DEPTH`] and the refusal of aliases.
pub(crate) fn load<'t>(text: &'t str, path: &str) -> Result<Vec<Node<'t>>, K8sError> {
    check_size(text.len() as u64, path)?;
    count_documents(text, path)?;
    find_alias(text, path)?;
    let block = block_levels(text, path)?;
    let flow = text
        .bytes()
        .filter(|b| matches!(b, b'[' | b'{'))
        .count()
        .min(MAX_FLOW_LEVELS);
    // A flow collection can also hold an implicit single-pair mapping (`[a: b]`), and a block
    // column can hold a mapping and an indentless sequence: two levels for each.
    let levels = 2 * block + 2 * flow + 8;
    let stack = STACK_BASE + levels * STACK_PER_LEVEL;

    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("accelprobe-yaml".to_string())
            .stack_size(stack)
            .spawn_scoped(scope, move || parse_checked(text, path));
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(K8sError::Internal {
                    path: path.to_string(),
                    message: "the YAML parser failed unexpectedly".to_string(),
                })
            }),
            Err(e) => Err(K8sError::Internal {
                path: path.to_string(),
                message: format!("cannot start the YAML parser thread: {e}"),
            }),
        }
    })
}

/// Refuse a size over [`MAX_FILE_BYTES`].
pub(crate) fn check_size(size: u64, path: &str) -> Result<(), K8sError> {
    if size > MAX_FILE_BYTES as u64 {
        return Err(K8sError::TooLarge {
            path: path.to_string(),
            size,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(())
}

/// Runs on the parser thread: parse, then check the exact depth and document count. A tree that
/// is too deep is dropped here, on the big stack.
fn parse_checked<'t>(text: &'t str, path: &str) -> Result<Vec<Node<'t>>, K8sError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| K8sError::Syntax {
        at: Position::new(path, e.marker().line(), e.marker().col() + 1),
        message: e.info().to_string(),
    })?;
    check_depth(&docs, path)?;
    if let Some(extra) = docs.get(MAX_DOCUMENTS) {
        return Err(K8sError::TooManyDocuments {
            at: Position::new(path, extra.span.start.line(), extra.span.start.col() + 1),
            limit: MAX_DOCUMENTS,
        });
    }
    Ok(docs)
}

/// The exact nesting depth (collections within collections), walked without recursion.
fn check_depth(docs: &[Node<'_>], path: &str) -> Result<(), K8sError> {
    let mut stack: Vec<(&Node<'_>, usize)> = docs.iter().rev().map(|d| (d, 0)).collect();
    while let Some((node, depth)) = stack.pop() {
        let inner_depth = depth + 1;
        let too_deep = || K8sError::TooDeep {
            at: Position::new(path, node.span.start.line(), node.span.start.col() + 1),
            limit: MAX_DEPTH,
            detail: String::new(),
        };
        match &node.data {
            YamlData::Sequence(items) => {
                if inner_depth > MAX_DEPTH {
                    return Err(too_deep());
                }
                stack.extend(items.iter().rev().map(|n| (n, inner_depth)));
            }
            YamlData::Mapping(map) => {
                if inner_depth > MAX_DEPTH {
                    return Err(too_deep());
                }
                let entries: Vec<_> = map.iter().collect();
                for (k, v) in entries.into_iter().rev() {
                    stack.push((v, inner_depth));
                    stack.push((k, inner_depth));
                }
            }
            YamlData::Tagged(_, inner) => stack.push((inner, depth)),
            _ => {}
        }
    }
    Ok(())
}

/// Lines split at `\n`, `\r\n` and `\r` (what saphyr counts as line breaks), numbered from 1.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = Some(text);
    let mut number = 0;
    std::iter::from_fn(move || {
        let current = rest?;
        number += 1;
        match current.find(['\n', '\r']) {
            Some(i) => {
                let skip = if current[i..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[i + skip..]);
                Some((number, &current[..i]))
            }
            None => {
                rest = None;
                if current.is_empty() && number > 1 {
                    None
                } else {
                    Some((number, current))
                }
            }
        }
    })
}

fn strip_bom(number: usize, line: &str) -> &str {
    if number == 1 {
        line.strip_prefix('\u{feff}').unwrap_or(line)
    } else {
        line
    }
}

fn is_blank_or_end(c: Option<char>) -> bool {
    matches!(c, None | Some(' ' | '\t' | '\0'))
}

fn is_document_marker(line: &str, marker: &str) -> bool {
    line.starts_with(marker) && is_blank_or_end(line[marker.len()..].chars().next())
}

/// Count documents from `---` markers at column 0 (plus one when content precedes the first
/// marker); refuse more than [`MAX_DOCUMENTS`] at the marker that starts the one too many.
pub(super) fn count_documents(text: &str, path: &str) -> Result<usize, K8sError> {
    let mut documents = 0;
    let mut seen_marker = false;
    for (number, line) in lines(text) {
        let line = strip_bom(number, line);
        if is_document_marker(line, "---") {
            seen_marker = true;
            documents += 1;
            if documents > MAX_DOCUMENTS {
                return Err(K8sError::TooManyDocuments {
                    at: Position::new(path, number, 1),
                    limit: MAX_DOCUMENTS,
                });
            }
        } else if !seen_marker && documents == 0 {
            let content = line.trim_start_matches([' ', '\t']);
            if !content.is_empty() && !content.starts_with('#') && !line.starts_with('%') {
                documents = 1;
            }
        }
    }
    Ok(documents)
}

/// A sound upper bound of the number of block collections open at once, from the lines alone.
///
/// saphyr's scanner keeps a stack of block indentation columns, strictly increasing. A token at
/// column `c` in block context pops every entry above `c`; content that is not a token (a
/// continuation line of a quoted, plain or block scalar, or of a flow collection) is at or
/// beyond the current indentation, or saphyr refuses it. Entries are pushed, at columns at or
/// after the first token of the line, only for `-` and `?` followed by a blank or the line end
/// where a simple key may start (that is, in the run of such indicators that begins the line:
/// after any other token saphyr refuses them), and for the `:` of a key, of which a line holds
/// at most one (saphyr refuses a second: "mapping values are not allowed in this context").
/// The model below pops at each non-blank, non-comment line's first character and pushes, as
/// far left as possible, one entry per indicator of the leading run plus one when a `:`
/// followed by a blank appears later on the line. It never holds fewer entries at or left of
/// any column than the scanner does, so its size bounds the scanner's. Each column holds at most
/// two collections (a mapping and an indentless sequence).
pub(super) fn block_levels(text: &str, path: &str) -> Result<usize, K8sError> {
    let mut stack: Vec<usize> = Vec::new();
    let mut max = 0;
    for (number, line) in lines(text) {
        let line = strip_bom(number, line);
        let indent = line.chars().take_while(|c| matches!(c, ' ' | '\t')).count();
        let rest = line.trim_start_matches([' ', '\t']);
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        while stack.last().is_some_and(|&top| top > indent) {
            stack.pop();
        }
        let pushes = line_pushes(rest);
        if stack.len() + pushes > MAX_BLOCK_LEVELS {
            return Err(K8sError::TooDeep {
                at: Position::new(path, number, indent + 1),
                limit: MAX_DEPTH,
                detail: format!(
                    " (this line could open more than {MAX_BLOCK_LEVELS} nested collections, \
                     refused before parsing)"
                ),
            });
        }
        let start = match stack.last() {
            Some(&top) if top >= indent => top + 1,
            _ => indent,
        };
        stack.extend(start..start + pushes);
        max = max.max(stack.len());
    }
    Ok(max)
}

/// Upper bound of the block collections one line can open: the indicators (`-`, `?`, `:`
/// followed by a blank) that begin it (after a `---` marker, if any), plus one for a key.
fn line_pushes(rest: &str) -> usize {
    let chars: Vec<char> = rest.chars().collect();
    let indicator = |i: usize| {
        matches!(chars.get(i), Some('-' | '?' | ':')) && is_blank_or_end(chars.get(i + 1).copied())
    };
    let mut i = 0;
    if rest.starts_with("---") && is_blank_or_end(chars.get(3).copied()) {
        i = 3;
    }
    let mut run = 0;
    loop {
        while matches!(chars.get(i), Some(' ' | '\t')) {
            i += 1;
        }
        if !indicator(i) {
            break;
        }
        run += 1;
        i += 1;
    }
    let key =
        (i..chars.len()).any(|j| chars[j] == ':' && is_blank_or_end(chars.get(j + 1).copied()));
    run + usize::from(key)
}

/// State of the alias scan that carries over line ends.
#[derive(Default)]
struct AliasScan {
    /// Open flow collections (`[`, `{`).
    flow: usize,
    /// Inside a quoted scalar that continues on the next line.
    quote: Option<char>,
    /// Inside a block scalar (`|`, `>`).
    block: Option<BlockScalar>,
}

struct BlockScalar {
    /// An upper bound of the indentation of the collection that holds the scalar (-1 at the
    /// document level): content lines are indented more.
    parent: isize,
    /// The indentation indicator (`|2`), when given.
    explicit: Option<usize>,
    /// Content indentation, once known.
    content: Option<usize>,
    /// Longest run of spaces on the blank lines before the first content line.
    max_blank: usize,
}

/// Find the first YAML alias (`*name` where a token starts) and refuse it.
///
/// The scan follows YAML's lexical structure closely enough for real manifests: comments,
/// quoted scalars (a `*` inside a single-line quoted scalar is text), block scalars (their
/// content is skipped only within an indentation that saphyr also treats as content), plain
/// scalars, and flow collections. Where it cannot tell (a line that may continue a plain
/// scalar, the inside of a quoted scalar that spans lines) it errs towards reporting an alias.
pub(super) fn find_alias(text: &str, path: &str) -> Result<(), K8sError> {
    let mut scan = AliasScan::default();
    for (number, line) in lines(text) {
        let line: Vec<char> = strip_bom(number, line).chars().collect();
        let starts_with = |m: &str| {
            let m: Vec<char> = m.chars().collect();
            line.starts_with(&m) && matches!(line.get(3), None | Some(' ' | '\t'))
        };
        if starts_with("---") || starts_with("...") {
            scan = AliasScan::default();
            if line[0] == '-' {
                scan.tokens(&line, 3, true, -1, number, path)?;
            }
            continue;
        }
        if let Some(block) = &mut scan.block {
            let spaces = line.iter().take_while(|&&c| c == ' ').count();
            if spaces == line.len() {
                if block.content.is_none() {
                    block.max_blank = block.max_blank.max(spaces);
                }
                continue;
            }
            let content = *block.content.get_or_insert_with(|| match block.explicit {
                Some(step) => (block.parent.max(0) as usize) + step,
                None => block.max_blank.max(spaces).max((block.parent + 1) as usize),
            });
            if spaces >= content {
                continue;
            }
            scan.block = None;
        }
        let mut start = 0;
        if let Some(quote) = scan.quote {
            match scan_quoted(&line, 0, quote, true, number, path)? {
                Some(end) => {
                    scan.quote = None;
                    start = end;
                }
                None => continue,
            }
        }
        let first = line.iter().take_while(|c| matches!(c, ' ' | '\t')).count();
        scan.tokens(&line, start, start == 0, first as isize, number, path)?;
    }
    Ok(())
}

impl AliasScan {
    /// Scan one line from `start`; `token_start` tells whether a token may start there (not
    /// right after a quoted scalar that ended on this line). `first` is the column of the
    /// line's first token (an upper bound of the enclosing indentation when the line opens no
    /// collection itself).
    fn tokens(
        &mut self,
        line: &[char],
        start: usize,
        mut token_start: bool,
        first: isize,
        number: usize,
        path: &str,
    ) -> Result<(), K8sError> {
        let mut i = start;
        // The previous character was a blank (or the line start).
        let mut after_blank = token_start;
        // Column of the last block collection opened on this line (`-`, `?`, a key).
        let mut opener: Option<usize> = None;
        // Where the current node began, and whether it was quoted.
        let mut node_start = i;
        let mut quoted = false;
        while i < line.len() {
            let c = line[i];
            let next = line.get(i + 1).copied();
            if c == ' ' || c == '\t' {
                after_blank = true;
                i += 1;
                continue;
            }
            if c == '#' && after_blank {
                return Ok(());
            }
            after_blank = false;
            let flow_indicator = |c: Option<char>| matches!(c, Some(',' | '[' | ']' | '{' | '}'));
            if token_start {
                match c {
                    '*' => {
                        let name: String = line[i + 1..]
                            .iter()
                            .take_while(|c| !matches!(c, ' ' | '\t' | ',' | '[' | ']' | '{' | '}'))
                            .take(40)
                            .collect();
                        let name = one_line(&name);
                        return Err(K8sError::Alias {
                            at: Position::new(path, number, i + 1),
                            name,
                        });
                    }
                    '&' | '!' => {
                        while i < line.len()
                            && !matches!(line[i], ' ' | '\t')
                            && !(self.flow > 0 && flow_indicator(Some(line[i])))
                        {
                            i += 1;
                        }
                        continue;
                    }
                    '"' | '\'' => {
                        node_start = i;
                        match scan_quoted(line, i + 1, c, false, number, path)? {
                            Some(end) => {
                                i = end;
                                token_start = false;
                                quoted = true;
                                continue;
                            }
                            None => {
                                self.quote = Some(c);
                                return Ok(());
                            }
                        }
                    }
                    '[' | '{' => {
                        if self.flow == 0 {
                            node_start = i;
                        }
                        self.flow += 1;
                        i += 1;
                        continue;
                    }
                    '|' | '>' if self.flow == 0 => {
                        let explicit = line[i + 1..]
                            .iter()
                            .take_while(|c| !matches!(c, ' ' | '\t'))
                            .find_map(|c| c.to_digit(10))
                            .map(|d| d as usize);
                        let parent = match opener {
                            Some(col) => col as isize,
                            None => first,
                        };
                        self.block = Some(BlockScalar {
                            parent,
                            explicit,
                            content: None,
                            max_blank: 0,
                        });
                        return Ok(());
                    }
                    '-' | '?' | ':' if is_blank_or_end(next) => {
                        if self.flow == 0 && c != ':' {
                            opener = Some(i);
                        }
                        i += 1;
                        continue;
                    }
                    '%' if i == 0 && self.flow == 0 => return Ok(()),
                    _ => {}
                }
            }
            match c {
                ',' | '[' | '{' if self.flow > 0 => {
                    if c != ',' {
                        self.flow += 1;
                    }
                    token_start = true;
                    quoted = false;
                }
                ']' | '}' if self.flow > 0 => {
                    self.flow -= 1;
                    token_start = false;
                }
                ':' if is_blank_or_end(next)
                    || (self.flow > 0 && (quoted || flow_indicator(next))) =>
                {
                    if self.flow == 0 {
                        opener = Some(node_start);
                    }
                    token_start = true;
                    quoted = false;
                }
                _ => {
                    if token_start {
                        node_start = i;
                        quoted = false;
                    }
                    token_start = false;
                }
            }
            i += 1;
        }
        Ok(())
    }
}

/// Scan a quoted scalar from `start` (just after the opening quote, or the line start for a
/// continuation line). Returns the index after the closing quote, or `None` when the scalar
/// continues on the next line. Inside a scalar that spans lines, a `*` after a blank is reported
/// as an alias: if this scan had entered a quote that saphyr does not see, that is where an
/// alias could hide.
fn scan_quoted(
    line: &[char],
    start: usize,
    quote: char,
    continuation: bool,
    number: usize,
    path: &str,
) -> Result<Option<usize>, K8sError> {
    let mut i = start;
    let closes = {
        let mut j = start;
        let mut found = false;
        while j < line.len() {
            if quote == '"' && line[j] == '\\' {
                j += 2;
                continue;
            }
            if line[j] == quote {
                if quote == '\'' && line.get(j + 1) == Some(&'\'') {
                    j += 2;
                    continue;
                }
                found = true;
                break;
            }
            j += 1;
        }
        found
    };
    let multiline = continuation || !closes;
    while i < line.len() {
        let c = line[i];
        if quote == '"' && c == '\\' {
            i += 2;
            continue;
        }
        if c == quote {
            if quote == '\'' && line.get(i + 1) == Some(&'\'') {
                i += 2;
                continue;
            }
            return Ok(Some(i + 1));
        }
        if multiline && c == '*' && (i == 0 || matches!(line[i - 1], ' ' | '\t')) {
            let name: String = line[i + 1..]
                .iter()
                .take_while(|c| !matches!(c, ' ' | '\t'))
                .take(40)
                .collect();
            let name = one_line(&name);
            return Err(K8sError::Alias {
                at: Position::new(path, number, i + 1),
                name,
            });
        }
        i += 1;
    }
    Ok(None)
}

/// Positions, sources and messages for one file.
#[derive(Clone)]
pub(crate) struct Ctx<'a> {
    pub path: &'a str,
    pub text: &'a str,
    /// Warnings found deep in a parse, collected by whoever made the context.
    pub warnings: std::cell::RefCell<Vec<super::error::Warning>>,
}

impl<'a> Ctx<'a> {
    pub fn new(path: &'a str, text: &'a str) -> Self {
        Ctx {
            path,
            text,
            warnings: Default::default(),
        }
    }

    /// Note a warning about `node`.
    pub fn warn(&self, node: &Node<'_>, message: String) {
        let at = self.pos(node);
        self.warnings
            .borrow_mut()
            .push(super::error::Warning { at, message });
    }

    pub fn pos(&self, node: &Node<'_>) -> Position {
        Position::new(self.path, node.span.start.line(), node.span.start.col() + 1)
    }

    pub fn source(&self, node: &Node<'_>) -> Source {
        self.pos(node).source()
    }

    /// The node's text as written (for messages): one line, at most 60 characters.
    pub fn raw(&self, node: &Node<'_>) -> String {
        let start = node.span.start.index();
        let end = node.span.end.index().max(start);
        let s: String = self
            .text
            .chars()
            .skip(start)
            .take((end - start).min(61))
            .collect();
        one_line(s.trim_end())
    }

    /// What a node is, for "found ..." in messages.
    pub fn describe(&self, node: &Node<'_>) -> String {
        match &inner(node).data {
            YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => {
                format!("the string '{}'", self.raw(node).trim_matches(['"', '\'']))
            }
            YamlData::Value(Scalar::Integer(_)) => format!("the number {}", self.raw(node)),
            YamlData::Value(Scalar::FloatingPoint(_)) => format!("the number {}", self.raw(node)),
            YamlData::Value(Scalar::Boolean(_)) => format!("the boolean {}", self.raw(node)),
            YamlData::Value(Scalar::Null) => "nothing (null)".to_string(),
            YamlData::BadValue => format!("'{}', which does not fit its tag", self.raw(node)),
            YamlData::Sequence(_) => "a list".to_string(),
            YamlData::Mapping(_) => "a mapping".to_string(),
            YamlData::Alias(_) => "an alias".to_string(),
            YamlData::Tagged(..) => "a tagged value".to_string(),
        }
    }

    pub fn wrong_type(&self, node: &Node<'_>, field: &str, expected: &'static str) -> K8sError {
        let mut found = self.describe(node);
        let hint = match &inner(node).data {
            YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_) | Scalar::Boolean(_))
                if expected.contains("string") =>
            {
                format!("; quote it: \"{}\"", self.raw(node))
            }
            _ => String::new(),
        };
        found.push_str(&hint);
        K8sError::WrongType {
            at: self.pos(node),
            field: field.to_string(),
            expected,
            found,
        }
    }

    pub fn missing(&self, holder: &Node<'_>, field: &str, context: &str) -> K8sError {
        K8sError::MissingField {
            at: self.pos(holder),
            field: field.to_string(),
            context: if context.is_empty() {
                String::new()
            } else {
                format!(" in {context}")
            },
        }
    }

    pub fn invalid(&self, node: &Node<'_>, field: &str, message: impl Into<String>) -> K8sError {
        K8sError::InvalidValue {
            at: self.pos(node),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A mapping, or `None` for null or an absent value.
    pub fn map<'n>(
        &self,
        node: &'n Node<'a>,
        field: &str,
    ) -> Result<Option<&'n Map<'a>>, K8sError> {
        match &inner(node).data {
            YamlData::Mapping(m) => Ok(Some(m)),
            _ if is_null(node) => Ok(None),
            _ => Err(self.wrong_type(node, field, "a mapping")),
        }
    }

    /// A list, or `None` for null.
    pub fn seq<'n>(
        &self,
        node: &'n Node<'a>,
        field: &str,
    ) -> Result<Option<&'n [Node<'a>]>, K8sError> {
        match &inner(node).data {
            YamlData::Sequence(s) => Ok(Some(s)),
            _ if is_null(node) => Ok(None),
            _ => Err(self.wrong_type(node, field, "a list")),
        }
    }

    /// A string, or `None` for null. Numbers and booleans are refused, as the Kubernetes API
    /// refuses them in string fields.
    pub fn str<'n>(&self, node: &'n Node<'a>, field: &str) -> Result<Option<&'n str>, K8sError> {
        match &inner(node).data {
            YamlData::Value(Scalar::String(s)) => Ok(Some(s.as_ref())),
            _ if is_null(node) => Ok(None),
            _ => Err(self.wrong_type(node, field, "a string")),
        }
    }

    /// Like [`Ctx::str`], but for a field that may also be written as a plain number or
    /// boolean (kept as written).
    pub fn scalar_text<'n>(&self, node: &'n Node<'a>) -> Option<Cow<'n, str>> {
        match &inner(node).data {
            YamlData::Value(Scalar::String(s)) => Some(Cow::Borrowed(s.as_ref())),
            YamlData::Value(Scalar::Integer(i)) => Some(Cow::Owned(i.to_string())),
            YamlData::Value(Scalar::Boolean(b)) => Some(Cow::Owned(b.to_string())),
            YamlData::Value(Scalar::FloatingPoint(f)) => Some(Cow::Owned(f.to_string())),
            _ => None,
        }
    }
}

/// The node beneath any tags (`!custom value`).
pub(crate) fn inner<'n, 't>(node: &'n Node<'t>) -> &'n Node<'t> {
    let mut n = node;
    while let YamlData::Tagged(_, boxed) = &n.data {
        n = boxed;
    }
    n
}

/// `null`, `~` or nothing.
pub(crate) fn is_null(node: &Node<'_>) -> bool {
    matches!(inner(node).data, YamlData::Value(Scalar::Null))
}

/// An empty document (saphyr gives one without content a `BadValue`) or a `null` one.
pub(crate) fn is_empty_document(node: &Node<'_>) -> bool {
    matches!(
        inner(node).data,
        YamlData::Value(Scalar::Null) | YamlData::BadValue
    )
}

/// A mapping entry by string key: (key node, value node).
pub(crate) fn entry<'n, 't>(map: &'n Map<'t>, key: &str) -> Option<(&'n Node<'t>, &'n Node<'t>)> {
    map.iter()
        .find(|(k, _)| matches!(&inner(k).data, YamlData::Value(Scalar::String(s)) if s == key))
}

/// The text of a string key, if it is one.
pub(crate) fn key_str<'n>(key: &'n Node<'_>) -> Option<&'n str> {
    match &inner(key).data {
        YamlData::Value(Scalar::String(s)) => Some(s.as_ref()),
        _ => None,
    }
}
