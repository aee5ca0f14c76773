//! Token scopes, checked against the configured catalogue.

/// A non-empty, de-duplicated, sorted set of scopes from the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Accepts `requested` only if every scope is in `catalogue`.
    pub fn parse(requested: &[String], catalogue: &[String]) -> Result<Self, String> {
        let mut scopes: Vec<String> = requested.iter().map(|s| s.trim().to_owned()).collect();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err("Ask for at least one scope.".to_owned());
        }
        if let Some(unknown) = scopes.iter().find(|s| !catalogue.contains(s)) {
            return Err(format!(
                "Unknown scope `{unknown}`. Known scopes: {}.",
                catalogue.join(", ")
            ));
        }
        Ok(Self(scopes))
    }

    /// Whether `scope` is granted.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// Whether every scope of `self` is also in `other`.
    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    /// The scopes, sorted.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Takes the inner list.
    pub fn into_inner(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Vec<String> {
        vec![
            "envs:read".into(),
            "envs:write".into(),
            "tokens:read".into(),
        ]
    }

    #[test]
    fn dedups_sorts_and_checks_catalogue() {
        let s = Scopes::parse(
            &["tokens:read".into(), "envs:read".into(), "envs:read".into()],
            &cat(),
        )
        .unwrap();
        assert_eq!(s.as_slice(), ["envs:read", "tokens:read"]);
        assert!(Scopes::parse(&["admin".into()], &cat())
            .unwrap_err()
            .contains("admin"));
        assert!(Scopes::parse(&[], &cat()).is_err());
    }

    #[test]
    fn subset() {
        let all = Scopes::parse(&cat(), &cat()).unwrap();
        let some = Scopes::parse(&["envs:read".into()], &cat()).unwrap();
        assert!(some.is_subset_of(&all));
        assert!(!all.is_subset_of(&some));
    }
}
