//! Splitting a SQL script into statements, remembering the line each starts on, so an error can
//! say `line 3: …`. This is not a parser: it only knows where `;` ends a statement (not inside
//! quotes, identifiers or comments); DataFusion parses each statement.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStatement {
    /// The statement's text, without the `;`.
    pub text: String,
    /// 1-based line of the script where its first non-blank character is.
    pub line: usize,
}

/// The statements of `script`; blank statements and comment-only ones are dropped.
pub fn split_statements(script: &str) -> Vec<ScriptStatement> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start_line: Option<usize> = None;
    let mut meaningful = false;
    let mut line = 1usize;
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    let mut flush =
        |current: &mut String, start_line: &mut Option<usize>, meaningful: &mut bool| {
            if *meaningful {
                out.push(ScriptStatement {
                    text: current.trim().to_string(),
                    line: start_line.unwrap_or(1),
                });
            }
            current.clear();
            *start_line = None;
            *meaningful = false;
        };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' => {
                // A quoted string or identifier; a doubled quote is an escaped quote.
                if start_line.is_none() {
                    start_line = Some(line);
                }
                meaningful = true;
                current.push(c);
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    current.push(d);
                    if d == '\n' {
                        line += 1;
                    }
                    i += 1;
                    if d == c {
                        if i < chars.len() && chars[i] == c {
                            current.push(c);
                            i += 1;
                            continue;
                        }
                        break;
                    }
                }
                continue;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 2;
                current.push(' ');
                continue;
            }
            ';' => {
                flush(&mut current, &mut start_line, &mut meaningful);
                i += 1;
                continue;
            }
            '\n' => {
                line += 1;
                current.push(c);
            }
            c if c.is_whitespace() => current.push(c),
            c => {
                if start_line.is_none() {
                    start_line = Some(line);
                }
                meaningful = true;
                current.push(c);
            }
        }
        i += 1;
    }
    flush(&mut current, &mut start_line, &mut meaningful);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let script = "-- nightly load\nSELECT 'a;b' AS x;\n\n/* two\nlines; */ SELECT \"c;d\"\n  FROM t; -- trailing; comment\n;\nSELECT 1";
        let got = split_statements(script);
        assert_eq!(
            got,
            vec![
                ScriptStatement {
                    text: "SELECT 'a;b' AS x".into(),
                    line: 2
                },
                ScriptStatement {
                    text: "SELECT \"c;d\"\n  FROM t".into(),
                    line: 5
                },
                ScriptStatement {
                    text: "SELECT 1".into(),
                    line: 8
                },
            ]
        );
    }

    #[test]
    fn escaped_quotes_stay_inside_the_string() {
        let got = split_statements("SELECT 'it''s; fine'; SELECT 2;");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].text, "SELECT 'it''s; fine'");
    }

    #[test]
    fn comment_only_scripts_have_no_statements() {
        assert!(split_statements("-- nothing\n/* at all */\n;;").is_empty());
    }
}
