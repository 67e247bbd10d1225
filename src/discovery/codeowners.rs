//! Bitbucket's code owners file (`.bitbucket/CODEOWNERS`): who owns a
//! repository as a whole, as an entity reference.
//!
//! One rule per line: a pattern, then owners; `#` starts a comment; the
//! last matching rule wins, so the owner of the repository is the first
//! owner of the last `*` rule (a bare `*` names nobody). Data Center names
//! groups `@@group` (custom groups `@@@group`, `@@"Name With Spaces"`),
//! Cloud names groups and teams `@<workspace>/<name>`; both name users
//! `@user`. E-mail addresses name nobody we can map.

use crate::catalog::validate::is_valid_object_name;

/// Where both products read the file.
pub(crate) const CODEOWNERS_PATH: &str = ".bitbucket/CODEOWNERS";

/// Lines read at most: the file is untrusted.
const MAX_LINES: usize = 10_000;

/// The owner of the `*` rule as `group:default/<name>` or
/// `user:default/<name>`; `None` when the file names nobody usable.
pub(crate) fn repository_owner(text: &str) -> Option<String> {
    let mut owner = None;
    for line in text.lines().take(MAX_LINES) {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("*") {
            continue;
        }
        // A later `*` rule replaces an earlier one, even with nobody.
        owner = words.find_map(entity_ref);
    }
    owner
}

/// One owner word as an entity reference, when it maps to one.
fn entity_ref(word: &str) -> Option<String> {
    let at = word.strip_prefix('@')?;
    let (kind, name) = if let Some(group) = at.strip_prefix("@") {
        ("group", group.trim_start_matches('@'))
    } else if let Some((_, team)) = at.rsplit_once('/') {
        ("group", team)
    } else {
        ("user", at)
    };
    // A quoted name with spaces is split over words: not one we can map.
    if name.starts_with('"') != (name.len() > 1 && name.ends_with('"')) {
        return None;
    }
    let name = name.trim_matches('"').to_ascii_lowercase();
    is_valid_object_name(&name).then(|| format!("{kind}:default/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_center_groups_and_users() {
        assert_eq!(
            repository_owner("# hi\n* @@team-3\n/docs/ @user7\n").as_deref(),
            Some("group:default/team-3")
        );
        assert_eq!(
            repository_owner("*   @user7   # the maintainer\n*.md @@writers\n").as_deref(),
            Some("user:default/user7")
        );
        assert_eq!(
            repository_owner("* @@@reviewers\n@@@reviewers @a @b\n").as_deref(),
            Some("group:default/reviewers")
        );
    }

    #[test]
    fn cloud_teams() {
        assert_eq!(
            repository_owner("* @acme/team-3 @user1\n").as_deref(),
            Some("group:default/team-3")
        );
    }

    #[test]
    fn last_star_rule_wins_and_a_bare_star_names_nobody() {
        assert_eq!(
            repository_owner("* @@old\n/src/ @u\n* @@new\n").as_deref(),
            Some("group:default/new")
        );
        assert_eq!(repository_owner("* @@team\n*\n/src/ @u\n"), None);
        assert_eq!(repository_owner("/src/ @@team\n*.yaml @u\n"), None);
    }

    #[test]
    fn unmappable_owners_are_skipped() {
        assert_eq!(
            repository_owner("* someone@example.com @@\"Web Team\" @dev\n").as_deref(),
            Some("user:default/dev")
        );
        assert_eq!(repository_owner("* a@example.com\n"), None);
    }
}
