//! The rules for nicks and room names, how names are compared, and the characters nobody may
//! send to others.

/// The longest nick or room name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Checks the rules shared by nicks and room names: 1 to 32 letters, digits, `_` or `-`.
pub fn validate_name(name: &str) -> bool {
    let mut count = 0;
    for c in name.chars() {
        count += 1;
        if count > MAX_NAME_CHARS || !(c.is_alphanumeric() || c == '_' || c == '-') {
            return false;
        }
    }
    count > 0
}

/// The key under which a name is compared: its Unicode lowercase.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Removes control characters (C0 except TAB, DEL, C1) so nobody can send terminal escapes to
/// others, and the bidirectional overrides, embeddings and isolates that could make one user's
/// text display as another kind of line.
///
/// Returns the input unchanged (borrowed) in the common case that it has none.
pub fn strip_controls(line: &str) -> std::borrow::Cow<'_, str> {
    let is_control = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if line.contains(is_control) {
        std::borrow::Cow::Owned(line.chars().filter(|&c| !is_control(c)).collect())
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}
