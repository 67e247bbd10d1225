//! Entities the daemon generates for repositories without a catalog file
//! are kept under units of their own, named with this suffix, so a real
//! entity always takes their reference, whichever source it comes from.

/// Marks a generated entity (value `"true"`).
pub(crate) const ANNOTATION_GENERATED: &str = "bitbucket-catalogd/generated";

/// Ends the unit a repository's generated entity is kept under.
pub(crate) const GENERATED_UNIT_SUFFIX: &str = "#generated";

pub(crate) fn is_generated_unit(unit: &str) -> bool {
    unit.ends_with(GENERATED_UNIT_SUFFIX)
}

/// A real entity (any source) takes its reference from a generated one,
/// never the other way round.
pub(crate) fn takes_over(holder_unit: &str, claimant_unit: &str) -> bool {
    is_generated_unit(holder_unit) && !is_generated_unit(claimant_unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_real_unit_takes_over_a_generated_one() {
        let generated = "https://b/projects/P/repos/r/browse/catalog-info.yaml#generated";
        let real = "https://b/projects/Q/repos/s/browse/extra/entity.yaml";
        assert!(takes_over(generated, real));
        assert!(!takes_over(real, generated));
        assert!(!takes_over(real, real));
        assert!(!takes_over(generated, generated));
    }
}
