//! Settings spelled as one of a few words (`algorithm = "least_conn"`, `mode = "cookie"`):
//! the [`Words`] trait that each such plan enum implements next to its definition, with its
//! words and what to say when another is written. The reader turns any of them into a value
//! with one parser (`read/value.rs`: `word::<Algorithm>`); the plan writes them back with
//! [`Words::word`].

/// A setting chosen from a list of words.
///
/// To add one: implement it for the plan enum, listing each word with the value it names (the
/// first word of a value is its own spelling; later ones are accepted aliases), and say in
/// `UNKNOWN` and `HELP` (or `help`, made from the word written) what to write instead;
/// the reader then needs only `t.set(key, &mut field, word)`.
pub(crate) trait Words: Sized + Clone + PartialEq + 'static {
    /// Each word and the value it names.
    const WORDS: &'static [(&'static str, Self)];

    /// The message for a word that is not one of these, `{}` standing for it (quoted).
    const UNKNOWN: &'static str;

    /// What to write instead of such a word.
    const HELP: &'static str = "";

    /// The help for `written`, when it depends on what was written.
    fn help(_written: &str) -> String {
        Self::HELP.into()
    }

    /// The message and the help for `written`, which is not one of the words.
    fn unknown(written: &str) -> (String, String) {
        let message = Self::UNKNOWN.replace("{}", &format!("{written:?}"));
        (message, Self::help(written))
    }

    /// The spelling looked up, for words that are not case-sensitive.
    fn normal(written: &str) -> String {
        written.to_string()
    }

    /// The value `written` names, if any.
    fn from_word(written: &str) -> Option<Self> {
        let normal = Self::normal(written);
        Self::WORDS
            .iter()
            .find(|(w, _)| *w == normal)
            .map(|(_, v)| v.clone())
    }

    /// How the value is written.
    fn word(&self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(_, v)| v == self)
            .map_or("", |(w, _)| w)
    }
}

/// `as_str!(Protocol, ...)`: each type's `as_str()`, how a value is written in a config (the
/// name the rest of the crate knows [`Words::word`] by).
macro_rules! as_str {
    ($($t:ty),*) => {$(
        impl $t {
            /// How the value is written in a config.
            pub fn as_str(&self) -> &'static str {
                self.word()
            }
        }
    )*};
}

pub(crate) use as_str;

/// The words of a table, for a `pub const` list of them.
pub(crate) const fn words_of<T, const N: usize>(table: &[(&'static str, T)]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = table[i].0;
        i += 1;
    }
    out
}
