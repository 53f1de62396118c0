//! Read-only SQL for users (`POST /api/sql`, `netguardian sql`): a sandbox around one
//! statement, because the database also holds the service's own writes.
//!
//! Layers, each enough on its own for some escapes and together for all we know of:
//!
//! 1. **The database cannot touch files.** [`crate::store::Store::restrict`] sets
//!    DuckDB's `enable_external_access = false` (database-wide and irreversible while
//!    the database is open) with `allowed_directories` limited to the export folders and
//!    this module's scratch folder, then `lock_configuration = true`, so no `SET` can
//!    undo it. `read_csv('/etc/passwd')`, `COPY ... TO '/tmp/x'`, `ATTACH`, `INSTALL`
//!    and `LOAD` fail inside DuckDB even if everything below were bypassed.
//! 2. **One statement of an allowed kind.** A small lexer (strings, quoted identifiers,
//!    comments, dollar quotes) finds the first keyword and any second statement; then
//!    DuckDB's own parser (`json_serialize_sql`, which only serializes `SELECT`
//!    statements) must agree that the text is exactly one `SELECT` (`WITH`, `FROM`-first,
//!    `DESCRIBE` and `SUMMARIZE` parse as one); `EXPLAIN [ANALYZE] x` is checked as `x`.
//! 3. **No file readers in the query tree.** The parsed tree is walked: table functions
//!    that read files (`read_*`, `*_scan`, `glob`, ...), `query()`, and file paths used
//!    as table names are refused with their name, so even the allowed export folder is
//!    not readable through SQL.
//! 4. **Read-only transaction.** The statement runs inside `BEGIN TRANSACTION READ ONLY`
//!    on its own connection and is rolled back.
//! 5. **Limits.** A timer interrupts the connection at the time limit
//!    (`Connection::interrupt_handle`); the result is cut at the row limit by an outer
//!    `LIMIT`, so DuckDB stops producing rows.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use duckdb::Connection;

/// Statement kinds a user may run.
pub const ALLOWED_KINDS: [&str; 7] = [
    "SELECT",
    "WITH",
    "FROM",
    "VALUES",
    "DESCRIBE",
    "SUMMARIZE",
    "EXPLAIN",
];

/// How results are returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Json,
    Csv,
    Parquet,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<OutputFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(OutputFormat::Json),
            "csv" => Ok(OutputFormat::Csv),
            "parquet" => Ok(OutputFormat::Parquet),
            _ => Err(format!(
                "unknown result format {s:?}; expected json, csv or parquet"
            )),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeout: Duration,
    pub max_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// Refused before running: names the rule.
    #[error("{0}")]
    Rejected(String),
    /// DuckDB refused or failed the statement (a user error: syntax, unknown column,
    /// a permission error from the sandbox).
    #[error("{0}")]
    Failed(String),
    #[error("the statement ran longer than the time limit of {0:.1} s and was interrupted")]
    Timeout(f64),
    /// Our side (cannot open a connection, write the scratch file).
    #[error("{0}")]
    Internal(String),
}

/// A column of the result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

/// The answer to one statement.
#[derive(Debug)]
pub struct SqlOutput {
    pub columns: Vec<Column>,
    /// Rows returned (at most the row limit).
    pub rows: usize,
    /// More rows existed than the limit allowed (for Parquet: the limit was reached).
    pub truncated: bool,
    pub elapsed: Duration,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    /// One JSON array per row, in column order.
    Json(Vec<serde_json::Value>),
    /// RFC 4180 CSV with a header line.
    Csv(String),
    /// A Parquet file's bytes.
    Parquet(Vec<u8>),
}

/// What the checker found the statement to be.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A query (SELECT, WITH, FROM, VALUES, DESCRIBE, SUMMARIZE): can be wrapped.
    Query(String),
    /// EXPLAIN [ANALYZE] of a query: run as is.
    Explain(String),
}

/// Table functions and functions that read files, execute other SQL or change state.
fn forbidden_function(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.rsplit('.').next().unwrap_or(&n);
    const EXACT: [&str; 18] = [
        "nextval",
        "setseed",
        "currval",
        "glob",
        "query",
        "query_table",
        "checkpoint",
        "force_checkpoint",
        "getenv",
        "duckdb_secrets",
        "which_secret",
        "json_execute_serialized_sql",
        "from_substrait",
        "from_substrait_json",
        "load_aws_credentials",
        "iceberg_scan",
        "delta_scan",
        "sqlite_attach",
    ];
    EXACT.contains(&n)
        || n.ends_with("_scan")
        || [
            "read_",
            "parquet_",
            "sniff_",
            "iceberg_",
            "delta_",
            "sqlite_",
            "postgres_",
            "mysql_",
        ]
        .iter()
        .any(|p| n.starts_with(p))
}

/// Splits off the first statement: returns (its text without the `;`, first keyword,
/// whether anything but whitespace or comments follows).
fn lex(sql: &str) -> Result<(String, Option<String>, bool), String> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut first_word: Option<String> = None;
    let mut end = b.len();
    let mut rest_nonempty = false;
    let mut in_rest = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                match sql[i + 2..].find("*/") {
                    Some(p) => i = i + 2 + p + 2,
                    None => return Err("unterminated /* comment".into()),
                }
                continue;
            }
            b'\'' | b'"' => {
                // E'...' strings take backslash escapes.
                let escapes = c == b'\'' && i > 0 && matches!(b[i - 1], b'e' | b'E');
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => return Err("unterminated quoted string or identifier".into()),
                        Some(&x) if x == b'\\' && escapes => j += 2,
                        Some(&x) if x == c => {
                            if b.get(j + 1) == Some(&c) {
                                j += 2;
                            } else {
                                break;
                            }
                        }
                        Some(_) => j += 1,
                    }
                }
                if in_rest {
                    rest_nonempty = true;
                }
                i = j + 1;
                continue;
            }
            b'$' => {
                // $tag$ ... $tag$
                let tag_end = sql[i + 1..].find('$').map(|p| i + 1 + p).filter(|&e| {
                    sql[i + 1..e]
                        .bytes()
                        .all(|x| x.is_ascii_alphanumeric() || x == b'_')
                });
                if let Some(e) = tag_end {
                    let tag = &sql[i..=e];
                    match sql[e + 1..].find(tag) {
                        Some(p) => {
                            if in_rest {
                                rest_nonempty = true;
                            }
                            i = e + 1 + p + tag.len();
                            continue;
                        }
                        None => return Err("unterminated dollar-quoted string".into()),
                    }
                }
            }
            b';' if !in_rest => {
                end = i;
                in_rest = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        if in_rest {
            if !c.is_ascii_whitespace() && c != b';' {
                rest_nonempty = true;
            }
        } else if first_word.is_none() && c.is_ascii_alphabetic() {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            first_word = Some(sql[i..j].to_ascii_uppercase());
            i = j;
            continue;
        }
        i += 1;
    }
    Ok((sql[..end].to_string(), first_word, rest_nonempty))
}

/// Checks one query (not EXPLAIN) with DuckDB's parser and walks its tree.
fn check_query(conn: &Connection, text: &str) -> Result<(), SqlError> {
    let tree: String = conn
        .query_row("SELECT json_serialize_sql(?::VARCHAR)", [text], |r| {
            r.get(0)
        })
        .map_err(|e| SqlError::Internal(format!("cannot parse the statement: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&tree)
        .map_err(|e| SqlError::Internal(format!("unreadable parse tree: {e}")))?;
    if v["error"].as_bool() == Some(true) {
        let msg = v["error_message"].as_str().unwrap_or("cannot parse");
        return Err(SqlError::Rejected(
            if v["error_type"].as_str() == Some("not implemented") {
                "only SELECT, WITH, FROM, VALUES, DESCRIBE, SUMMARIZE and EXPLAIN statements are allowed"
                    .into()
            } else {
                format!("syntax error: {msg}")
            },
        ));
    }
    let stmts = v["statements"].as_array().map(|a| a.len()).unwrap_or(0);
    if stmts != 1 {
        return Err(SqlError::Rejected(format!(
            "exactly one statement is allowed, found {stmts}"
        )));
    }
    if v["statements"][0]["named_param_map"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        return Err(SqlError::Rejected(
            "parameters (? or $name) are not supported; write values into the statement".into(),
        ));
    }
    walk(&v["statements"][0])
}

fn walk(v: &serde_json::Value) -> Result<(), SqlError> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(f) = m.get("function_name").and_then(|f| f.as_str())
                && forbidden_function(f)
            {
                return Err(SqlError::Rejected(format!(
                    "function {f}() is not allowed: it reads files, runs other SQL or changes state"
                )));
            }
            if m.get("type").and_then(|t| t.as_str()) == Some("BASE_TABLE") {
                let name = m.get("table_name").and_then(|t| t.as_str()).unwrap_or("");
                if name.contains(['/', '\\', '.', ':', '*', '?']) {
                    return Err(SqlError::Rejected(format!(
                        "table name {name:?} looks like a file; reading files is not allowed"
                    )));
                }
            }
            m.values().try_for_each(walk)
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(walk),
        _ => Ok(()),
    }
}

/// Decides whether `sql` may run and what it is.
fn classify(conn: &Connection, sql: &str) -> Result<Kind, SqlError> {
    if sql.len() > 100_000 {
        return Err(SqlError::Rejected(
            "statement longer than 100000 bytes".into(),
        ));
    }
    let (text, first, more) =
        lex(sql).map_err(|e| SqlError::Rejected(format!("syntax error: {e}")))?;
    if more {
        return Err(SqlError::Rejected(
            "multiple statements: send exactly one statement".into(),
        ));
    }
    let Some(first) = first else {
        return Err(SqlError::Rejected("empty statement".into()));
    };
    if !ALLOWED_KINDS.contains(&first.as_str()) {
        return Err(SqlError::Rejected(format!(
            "{first} statements are not allowed; allowed: {}",
            ALLOWED_KINDS.join(", ")
        )));
    }
    if first == "EXPLAIN" {
        let (_, rest) = split_first_word(&text, "EXPLAIN");
        let inner = match lex(rest) {
            Ok((_, Some(w), _)) if w == "ANALYZE" => split_first_word(rest, "ANALYZE").1,
            _ => rest,
        };
        let (_, inner_first, _) = lex(inner).map_err(SqlError::Rejected)?;
        match inner_first.as_deref() {
            Some(k) if ALLOWED_KINDS.contains(&k) && k != "EXPLAIN" => {}
            other => {
                return Err(SqlError::Rejected(format!(
                    "EXPLAIN of {} is not allowed; explain a query",
                    other.unwrap_or("nothing")
                )));
            }
        }
        check_query(conn, inner)?;
        return Ok(Kind::Explain(text));
    }
    check_query(conn, &text)?;
    Ok(Kind::Query(text))
}

/// Splits `text` after its first occurrence of keyword `kw` (case-insensitive, found by
/// the caller as the first word).
fn split_first_word<'a>(text: &'a str, kw: &str) -> (&'a str, &'a str) {
    let upper = text.to_ascii_uppercase();
    match upper.find(kw) {
        Some(p) => (&text[..p + kw.len()], &text[p + kw.len()..]),
        None => (text, ""),
    }
}

/// Runs one user statement on `conn` (a connection of its own: the time limit
/// interrupts whatever it is running) under the sandbox. `scratch` is a folder in the
/// database's allowed directories, for Parquet results.
pub fn run(
    conn: &Connection,
    sql: &str,
    format: OutputFormat,
    limits: Limits,
    scratch: &Path,
) -> Result<SqlOutput, SqlError> {
    let started = Instant::now();
    let kind = classify(conn, sql)?;
    if matches!(kind, Kind::Explain(_)) && format == OutputFormat::Parquet {
        return Err(SqlError::Rejected(
            "EXPLAIN returns text; ask for json or csv".into(),
        ));
    }
    conn.execute_batch("BEGIN TRANSACTION READ ONLY")
        .map_err(|e| SqlError::Internal(e.to_string()))?;
    let fired = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let timer = {
        let handle = conn.interrupt_handle();
        let fired = fired.clone();
        let timeout = limits.timeout;
        std::thread::Builder::new()
            .name("ng-sql-timer".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                    fired.store(true, Ordering::SeqCst);
                    handle.interrupt();
                }
            })
            .map_err(|e| SqlError::Internal(e.to_string()))?
    };
    let res = execute(conn, &kind, format, limits.max_rows, scratch);
    drop(done_tx);
    let _ = timer.join();
    let _ = conn.execute_batch("ROLLBACK");
    let (columns, rows, truncated, body) = res.map_err(|e| match e {
        _ if fired.load(Ordering::SeqCst) => SqlError::Timeout(limits.timeout.as_secs_f64()),
        ExecError::Db(e) => SqlError::Failed(clean_message(&e.to_string())),
        ExecError::Io(e) => SqlError::Internal(e),
    })?;
    Ok(SqlOutput {
        columns,
        rows,
        truncated,
        elapsed: started.elapsed(),
        body,
    })
}

/// DuckDB's messages, without the verbose "LINE 1: ..." caret block.
fn clean_message(m: &str) -> String {
    m.lines()
        .take_while(|l| !l.starts_with("LINE "))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

enum ExecError {
    Db(duckdb::Error),
    Io(String),
}

impl From<duckdb::Error> for ExecError {
    fn from(e: duckdb::Error) -> Self {
        ExecError::Db(e)
    }
}

type Executed = (Vec<Column>, usize, bool, Body);

fn execute(
    conn: &Connection,
    kind: &Kind,
    format: OutputFormat,
    max_rows: usize,
    scratch: &Path,
) -> Result<Executed, ExecError> {
    match kind {
        Kind::Explain(text) => {
            let mut st = conn.prepare(text)?;
            let mut rows = st.query([])?;
            let mut out: Vec<Vec<Option<String>>> = Vec::new();
            let mut ncols = 0;
            while let Some(r) = rows.next()? {
                ncols = r.as_ref().column_count();
                let mut row = Vec::with_capacity(ncols);
                for i in 0..ncols {
                    row.push(r.get::<_, Option<String>>(i)?);
                }
                out.push(row);
            }
            drop(rows);
            let columns: Vec<Column> = (0..ncols)
                .map(|i| Column {
                    name: st.column_name(i).map(|s| s.to_string()).unwrap_or_default(),
                    ty: "VARCHAR".into(),
                })
                .collect();
            let n = out.len();
            let body = match format {
                OutputFormat::Csv => Body::Csv(to_csv(&columns, &out)),
                _ => Body::Json(
                    out.into_iter()
                        .map(|r| {
                            serde_json::Value::from(
                                r.into_iter()
                                    .map(serde_json::Value::from)
                                    .collect::<Vec<_>>(),
                            )
                        })
                        .collect(),
                ),
            };
            Ok((columns, n, false, body))
        }
        Kind::Query(q) => {
            // The statement is one SELECT by DuckDB's own parser; as a subquery it cannot
            // reach outside the parentheses. The newline ends a trailing `--` comment.
            let sub = format!("({q}\n) AS _ng_q");
            let columns = {
                let mut st = conn.prepare(&format!(
                    "SELECT column_name, column_type FROM (DESCRIBE (SELECT * FROM {sub}))"
                ))?;
                st.query_map([], |r| {
                    Ok(Column {
                        name: r.get(0)?,
                        ty: r.get(1)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?
            };
            let lim = max_rows.saturating_add(1);
            match format {
                OutputFormat::Json => {
                    let mut st = conn.prepare(&format!(
                        "SELECT json_array(*COLUMNS(*))::VARCHAR FROM {sub} LIMIT {lim}"
                    ))?;
                    let mut rows = Vec::new();
                    let mut it = st.query([])?;
                    while let Some(r) = it.next()? {
                        let s: String = r.get(0)?;
                        rows.push(serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)));
                    }
                    let truncated = rows.len() > max_rows;
                    rows.truncate(max_rows);
                    Ok((columns, rows.len(), truncated, Body::Json(rows)))
                }
                OutputFormat::Csv => {
                    let mut st = conn.prepare(&format!(
                        "SELECT COLUMNS(*)::VARCHAR FROM {sub} LIMIT {lim}"
                    ))?;
                    let n = columns.len();
                    let mut out: Vec<Vec<Option<String>>> = Vec::new();
                    let mut it = st.query([])?;
                    while let Some(r) = it.next()? {
                        let mut row = Vec::with_capacity(n);
                        for i in 0..n {
                            row.push(r.get::<_, Option<String>>(i)?);
                        }
                        out.push(row);
                    }
                    let truncated = out.len() > max_rows;
                    out.truncate(max_rows);
                    let csv = to_csv(&columns, &out);
                    Ok((columns, out.len(), truncated, Body::Csv(csv)))
                }
                OutputFormat::Parquet => {
                    std::fs::create_dir_all(scratch).map_err(|e| {
                        ExecError::Io(format!("cannot create {}: {e}", scratch.display()))
                    })?;
                    let file = scratch.join(format!(
                        "result-{}-{:016x}.parquet",
                        std::process::id(),
                        rand::random::<u64>()
                    ));
                    let path = file.display().to_string().replace('\'', "''");
                    let written = conn.execute(
                        &format!(
                            "COPY (SELECT * FROM {sub} LIMIT {max_rows}) TO '{path}' (FORMAT parquet)"
                        ),
                        [],
                    );
                    // COPY reports the rows it wrote.
                    let res = written.map_err(ExecError::Db).and_then(|n| {
                        std::fs::read(&file)
                            .map(|b| (n, b))
                            .map_err(|e| ExecError::Io(format!("cannot read the result: {e}")))
                    });
                    let _ = std::fs::remove_file(&file);
                    let (n, bytes) = res?;
                    Ok((columns, n, n >= max_rows, Body::Parquet(bytes)))
                }
            }
        }
    }
}

/// RFC 4180: fields with a comma, quote or line break are quoted; NULL is empty.
pub fn to_csv(columns: &[Column], rows: &[Vec<Option<String>>]) -> String {
    fn field(out: &mut String, s: &str) {
        if s.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&s.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(s);
        }
    }
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, &c.name);
    }
    out.push_str("\r\n");
    for r in rows {
        for (i, v) in r.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if let Some(v) = v {
                field(&mut out, v);
            }
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer_finds_first_word_and_second_statements() {
        let (t, w, more) = lex("  -- hi\n select 'a;b', \"x;\" ; ").unwrap();
        assert_eq!(w.as_deref(), Some("SELECT"));
        assert!(!more);
        assert!(t.contains("'a;b'"));
        let (_, w, more) = lex("/* c */ select 1; drop table flows").unwrap();
        assert_eq!(w.as_deref(), Some("SELECT"));
        assert!(more);
        let (_, _, more) = lex("select $$;$$ ; -- trailing\n").unwrap();
        assert!(!more);
        let (_, _, more) = lex(r"select E'\';' ; select 2").unwrap();
        assert!(more);
        assert!(lex("select 'open").is_err());
        assert!(lex("select 1 /* open").is_err());
    }

    #[test]
    fn forbidden_functions() {
        for f in [
            "read_csv",
            "READ_PARQUET",
            "parquet_scan",
            "glob",
            "query",
            "main.read_text",
            "sniff_csv",
        ] {
            assert!(forbidden_function(f), "{f}");
        }
        for f in [
            "range",
            "count",
            "duckdb_tables",
            "unnest",
            "generate_series",
        ] {
            assert!(!forbidden_function(f), "{f}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let cols = vec![
            Column {
                name: "a".into(),
                ty: "VARCHAR".into(),
            },
            Column {
                name: "b,c".into(),
                ty: "VARCHAR".into(),
            },
        ];
        let s = to_csv(&cols, &[vec![Some("x\"y".into()), None]]);
        assert_eq!(s, "a,\"b,c\"\r\n\"x\"\"y\",\r\n");
    }
}
