//! A bench's own arguments: what follows `cargo bench --bench NAME --`
//! (cargo adds `--bench`, which is not one of them).

pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Self {
        Self(
            std::env::args()
                .skip(1)
                .filter(|a| a != "--bench")
                .collect(),
        )
    }

    /// The number after `flag` (`--repos 2000`); `None` when absent or not
    /// a number.
    pub fn value(&self, flag: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1))
            .and_then(|v| v.parse().ok())
    }

    /// Whether `word` (a switch such as `--per-project`) was given.
    pub fn has(&self, word: &str) -> bool {
        self.0.iter().any(|a| a == word)
    }

    /// The first of `words` that was given (a scenario's name).
    pub fn one_of<'a>(&self, words: &[&'a str]) -> Option<&'a str> {
        self.0
            .iter()
            .find_map(|a| words.iter().find(|w| **w == a.as_str()).copied())
    }
}
