//! The README's dashboard section lists exactly the keys of the keymap, so it cannot drift.

use megascaler::tui::keymap;

#[test]
fn readme_section_lists_every_key_of_the_keymap() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/README-dashboard.md");
    let text = std::fs::read_to_string(path).expect("assets/README-dashboard.md");
    let rows = keymap::markdown_rows();
    assert!(
        text.contains(&rows),
        "assets/README-dashboard.md must contain the keymap's rows:\n{rows}"
    );
}

#[test]
fn readme_section_embeds_the_dashboard_capture() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/");
    let text = std::fs::read_to_string(format!("{dir}README-dashboard.md")).expect("section");
    let capture = std::fs::read_to_string(format!("{dir}dashboard.txt")).expect("capture");
    assert!(
        capture.lines().count() >= 24,
        "the capture is a whole screen"
    );
    assert!(
        text.contains(capture.trim_end()),
        "the section shows assets/dashboard.txt"
    );
}
