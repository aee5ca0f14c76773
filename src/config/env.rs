//! Reading single variables: numbers in a range, booleans, lists, the app URL
//! and token prefixes. Each error message names its variable.

use super::{err, ConfigError};

/// The trimmed, non-empty value of `name`, if set (an empty value counts as unset).
pub(super) fn get<'a>(
    vars: &'a std::collections::HashMap<String, String>,
    name: &str,
) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `APP_URL`: an http(s) URL with a host and no query or fragment.
pub(super) fn parse_app_url(raw: &str) -> Result<url::Url, ConfigError> {
    let url =
        url::Url::parse(raw).map_err(|e| err(format!("APP_URL `{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(format!(
            "APP_URL `{raw}` must be an http(s) URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("APP_URL must not carry a query or fragment"));
    }
    Ok(url)
}

/// Whether `p` may prefix a token: 2 to 16 characters of a-z, 0-9 and `_`.
pub(super) fn valid_prefix(p: &str) -> bool {
    (2..=16).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Items separated by commas or spaces, empty ones dropped.
pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A comma list, or a JSON array of strings (seed 004's form).
pub(super) fn parse_list(
    name: &str,
    value: Option<&str>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(v) = value else { return Ok(None) };
    if v.starts_with('[') {
        let list: Vec<String> = serde_json::from_str(v)
            .map_err(|e| err(format!("{name} is not a JSON array of strings: {e}")))?;
        return Ok(Some(list));
    }
    let list = split_list(v);
    if let Some(bad) = list.iter().find(|s| {
        !s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'))
    }) {
        return Err(err(format!("{name}: `{bad}` is not a valid scope name")));
    }
    Ok(Some(list))
}

/// `true`/`false` and their usual spellings; unset is `false`.
pub(super) fn parse_bool(name: &str, value: Option<&str>) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => Err(err(format!("{name} must be true or false, not `{other}`"))),
    }
}

/// A whole number within `min..=max`.
pub(super) fn parse_num<T>(name: &str, value: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = value
        .parse()
        .map_err(|_| err(format!("{name} must be a whole number, not `{value}`")))?;
    if n < min || n > max {
        return Err(err(format!(
            "{name} must be between {min} and {max}, not {n}"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_range_checked_and_name_their_variable() {
        assert_eq!(parse_num::<u32>("N", "7", 1, 10).unwrap(), 7);
        let e = parse_num::<u32>("N", "11", 1, 10).unwrap_err();
        assert_eq!(e.0, "N must be between 1 and 10, not 11");
        let e = parse_num::<u32>("N", "x", 1, 10).unwrap_err();
        assert_eq!(e.0, "N must be a whole number, not `x`");
    }

    #[test]
    fn booleans_accept_usual_spellings_and_default_to_false() {
        assert!(!parse_bool("B", None).unwrap());
        assert!(parse_bool("B", Some("YES")).unwrap());
        assert!(!parse_bool("B", Some("off")).unwrap());
        assert!(parse_bool("B", Some("maybe")).unwrap_err().0.contains('B'));
    }

    #[test]
    fn lists_split_on_commas_and_spaces_or_parse_as_json() {
        assert_eq!(split_list(" a, b  c,,"), ["a", "b", "c"]);
        assert_eq!(
            parse_list("L", Some(r#"["x y"]"#)).unwrap(),
            Some(vec!["x y".to_owned()])
        );
        assert_eq!(parse_list("L", None).unwrap(), None);
        assert!(parse_list("L", Some("a,b!")).unwrap_err().0.contains("b!"));
    }

    #[test]
    fn app_url_and_prefixes_are_checked() {
        assert!(parse_app_url("https://auth.example.com").is_ok());
        assert!(parse_app_url("http://x/?q=1").is_err());
        assert!(parse_app_url("ftp://x").is_err());
        assert!(valid_prefix("esh_"));
        assert!(!valid_prefix("ESH-"));
        assert!(!valid_prefix("e"));
    }
}
