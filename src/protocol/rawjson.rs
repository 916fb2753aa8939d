//! A minimal scanner over JSON text that reports byte spans, so a value can be spliced into a
//! job message without re-serialising (and thereby altering) anything else.
//!
//! Owns only locating things: the spans of an object's members and an array's elements. The
//! text must already be known to be valid JSON (callers check with serde_json first); on
//! anything unexpected the scanner returns `None` rather than panicking.

/// One member of an object: decoded key, and the span of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: String,
    pub value: (usize, usize),
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn string_end(b: &[u8], start: usize) -> Option<usize> {
    if b.get(start) != Some(&b'"') {
        return None;
    }
    let mut i = start + 1;
    loop {
        match b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The end (exclusive) of the value starting at `start` (after white space).
pub fn value_end(b: &[u8], start: usize) -> Option<usize> {
    let i = skip_ws(b, start);
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Members of the object spanning `span` (which must start at `{`).
pub fn members(text: &str, span: (usize, usize)) -> Option<Vec<Member>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, span.0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => return Some(out),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {
                let kend = string_end(b, i)?;
                let key: String = serde_json::from_str(text.get(i..kend)?).ok()?;
                i = skip_ws(b, kend);
                if b.get(i) != Some(&b':') {
                    return None;
                }
                let vstart = skip_ws(b, i + 1);
                let vend = value_end(b, vstart)?;
                out.push(Member {
                    key,
                    value: (vstart, vend),
                });
                i = vend;
            }
            _ => return None,
        }
        if i > span.1 {
            return None;
        }
    }
}

/// Element spans of the array spanning `span` (which must start at `[`).
pub fn elements(text: &str, span: (usize, usize)) -> Option<Vec<(usize, usize)>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, span.0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b']' => return Some(out),
            b',' => i += 1,
            _ => {
                let end = value_end(b, i)?;
                out.push((i, end));
                i = end;
            }
        }
        if i > span.1 {
            return None;
        }
    }
}

/// The span of the whole document's top value.
pub fn root(text: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    Some((start, value_end(b, start)?))
}

/// The first member whose key equals `key` ignoring ASCII case (type-2 dictionaries and the
/// message's own keys compare case-insensitively).
pub fn find<'a>(members: &'a [Member], key: &str) -> Option<&'a Member> {
    members.iter().find(|m| m.key.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_members_and_elements() {
        let t = r#" { "a" : [1, {"x":"]}"}, "s\"q"], "b":true ,"c":-1.5e3} "#;
        let r = root(t).unwrap();
        let m = members(t, r).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(&t[m[1].value.0..m[1].value.1], "true");
        assert_eq!(&t[m[2].value.0..m[2].value.1], "-1.5e3");
        let e = elements(t, m[0].value).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(&t[e[1].0..e[1].1], r#"{"x":"]}"}"#);
        assert_eq!(&t[e[2].0..e[2].1], r#""s\"q""#);
        assert!(elements(t, (0, 1)).is_none());
    }

    #[test]
    fn truncated_text_is_none_not_a_panic() {
        for t in [r#"{"a":"#, r#"{"a":[1,"#, r#"{"a":"x"#, "", "{"] {
            let _ = root(t).and_then(|r| members(t, r));
        }
    }
}
