//! `brick config`: every setting in effect and where it came from.

use std::fmt::Write as _;

use brick::config::Settings;
use brick::Error;

use super::output::to_json;
use super::Ctx;

pub(super) fn run(ctx: &Ctx, out: &mut String) -> Result<(), Error> {
    print_settings(ctx.settings, ctx.json, out);
    Ok(())
}

/// The settings in effect: as JSON, or as a settings file with each value's source and meaning
/// in a comment (durations quoted, so the text is valid TOML).
fn print_settings(settings: &Settings, json: bool, out: &mut String) {
    let entries = settings.entries();
    if json {
        let file = settings.file().map(|p| p.display().to_string());
        let v = serde_json::json!({ "file": file, "settings": entries });
        let _ = writeln!(out, "{}", to_json(&v));
        return;
    }
    let _ = match settings.file() {
        Some(p) => writeln!(out, "# settings file: {}", p.display()),
        None => writeln!(
            out,
            "# no settings file ({} does not exist)",
            brick::config::DEFAULT_PATH
        ),
    };
    for e in entries {
        let value = if e.value.bytes().all(|b| b.is_ascii_digit()) {
            e.value.clone()
        } else {
            format!("{:?}", e.value)
        };
        let _ = writeln!(
            out,
            "{:<23} = {:<14} # {}: {}",
            e.key, value, e.source, e.help
        );
    }
}
