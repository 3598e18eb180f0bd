//! PostgREST's query language as far as the fake needs it: `select=`,
//! `col=op.value` filters, `in.(…)` lists and `or=(…)` with PostgREST's
//! quoting, `order`, `limit`, `offset`, and its error answers.

use serde_json::{Map, Value, json};

/// An HTTP status and a JSON body.
pub type Answer = (u16, String);

pub fn error(code: &str, message: &str) -> String {
    json!({"code": code, "details": null, "hint": null, "message": message}).to_string()
}

/// One `column.operator.value` condition.
#[derive(Debug)]
struct Filter {
    column: String,
    operator: String,
    value: String,
    /// The items of an `in.(…)` list, unquoted.
    items: Vec<String>,
}

impl Filter {
    fn matches(&self, row: &Map<String, Value>) -> bool {
        let cell = row.get(&self.column).unwrap_or(&Value::Null);
        let text = match cell {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        match self.operator.as_str() {
            "eq" => text.as_deref() == Some(self.value.as_str()),
            "neq" => text.is_some_and(|t| t != self.value),
            "in" => text.is_some_and(|t| self.items.contains(&t)),
            // `is` takes null/true/false only (checked when parsing).
            _ => match self.value.as_str() {
                "null" => cell.is_null(),
                other => text.as_deref() == Some(other),
            },
        }
    }
}

#[derive(Debug, Default)]
pub struct Query {
    select: Option<Vec<String>>,
    filters: Vec<Filter>,
    any_of: Vec<Vec<Filter>>,
    order: Option<(String, bool)>,
    limit: Option<usize>,
    offset: usize,
}

fn bad_filter(text: &str) -> Answer {
    (
        400,
        json!({"code": "PGRST100", "details": format!("unexpected input in {text:?}"), "hint": null,
               "message": format!("\"failed to parse filter ({text})\" (line 1, column 1)")})
        .to_string(),
    )
}

fn unknown_column(table: &str, column: &str) -> Answer {
    (
        400,
        error("42703", &format!("column {table}.{column} does not exist")),
    )
}

impl Query {
    pub fn parse(
        table: &str,
        columns: &[&str],
        pairs: &[(String, String)],
    ) -> Result<Query, Answer> {
        let known = |column: &str| -> Result<String, Answer> {
            if columns.contains(&column) {
                Ok(column.to_owned())
            } else {
                Err(unknown_column(table, column))
            }
        };
        let mut query = Query::default();
        for (key, value) in pairs {
            match key.as_str() {
                "select" if value == "*" => {}
                "select" => {
                    query.select = Some(
                        value
                            .split(',')
                            .map(|c| known(c.trim()))
                            .collect::<Result<_, _>>()?,
                    )
                }
                "order" => {
                    let (column, direction) = value.split_once('.').unwrap_or((value, "asc"));
                    query.order = Some((known(column)?, direction == "desc"));
                }
                "limit" => query.limit = Some(value.parse().map_err(|_| bad_filter(value))?),
                "offset" => query.offset = value.parse().map_err(|_| bad_filter(value))?,
                "or" => {
                    let items = split_or(value).ok_or_else(|| bad_filter(value))?;
                    let mut any = Vec::new();
                    for item in items {
                        let (column, rest) =
                            item.split_once('.').ok_or_else(|| bad_filter(value))?;
                        let filter = parse_condition(known(column)?, rest, true)
                            .ok_or_else(|| bad_filter(value))?;
                        any.push(filter);
                    }
                    query.any_of.push(any);
                }
                column => {
                    let column = known(column)?;
                    let filter =
                        parse_condition(column, value, false).ok_or_else(|| bad_filter(value))?;
                    query.filters.push(filter);
                }
            }
        }
        Ok(query)
    }

    pub fn matches(&self, row: &Map<String, Value>) -> bool {
        self.filters.iter().all(|f| f.matches(row))
            && self
                .any_of
                .iter()
                .all(|any| any.iter().any(|f| f.matches(row)))
    }

    pub fn select(&self, rows: &[Map<String, Value>], max_rows: Option<usize>) -> String {
        let mut found: Vec<&Map<String, Value>> = rows.iter().filter(|r| self.matches(r)).collect();
        if let Some((column, descending)) = &self.order {
            let key = |r: &Map<String, Value>| r.get(column).map(|v| v.to_string());
            found.sort_by_key(|r| key(r));
            if *descending {
                found.reverse();
            }
        }
        let limit = match (self.limit, max_rows) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(usize::MAX),
        };
        let shown: Vec<Value> = found
            .into_iter()
            .skip(self.offset)
            .take(limit)
            .map(|row| match &self.select {
                None => Value::Object(row.clone()),
                Some(columns) => Value::Object(
                    columns
                        .iter()
                        .map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null)))
                        .collect(),
                ),
            })
            .collect();
        Value::Array(shown).to_string()
    }
}

/// `operator.value` (or, inside `or=(…)`, a value that may be double-quoted
/// with `\` escapes, PostgREST's rule for values holding `,` `(` `)`).
fn parse_condition(column: String, text: &str, in_list: bool) -> Option<Filter> {
    let (operator, raw) = text.split_once('.')?;
    if !matches!(operator, "eq" | "neq" | "is" | "in") {
        return None;
    }
    if operator == "in" {
        if in_list {
            return None;
        }
        return Some(Filter {
            column,
            operator: operator.to_owned(),
            value: raw.to_owned(),
            items: in_items(raw)?,
        });
    }
    let value = if in_list && raw.starts_with('"') {
        unquote(raw)?
    } else {
        if in_list && raw.contains(['(', ')', '"']) {
            return None;
        }
        raw.to_owned()
    };
    if operator == "is" && !matches!(value.as_str(), "null" | "true" | "false") {
        return None;
    }
    Some(Filter {
        column,
        operator: operator.to_owned(),
        value,
        items: Vec::new(),
    })
}

/// `"…"` with `\` escapes, PostgREST's quoting of values holding reserved
/// characters.
fn unquote(raw: &str) -> Option<String> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?),
            '"' => return None,
            c => value.push(c),
        }
    }
    Some(value)
}

/// The values of `(a,"b,c",d)`. An unquoted value holding one of
/// PostgREST's reserved characters (`,` `.` `:` `(` `)` `"`) is refused, as
/// PostgREST would misread it.
fn in_items(raw: &str) -> Option<Vec<String>> {
    split_or(raw)?
        .into_iter()
        .map(|item| {
            if item.starts_with('"') {
                unquote(&item)
            } else if item.contains(['.', ':', '(', ')', '"']) {
                None
            } else {
                Some(item)
            }
        })
        .collect()
}

/// The items of `(a.eq.1,b.eq."x,y")`, split on commas outside quotes.
fn split_or(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                current.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return None;
    }
    items.push(current);
    items.iter().all(|i| !i.is_empty()).then_some(items)
}
