//! Tables of the CLI's text output: plain columns without borders, so that
//! they read in a terminal and still go through `grep` and `awk`.

use comfy_table::{presets, CellAlignment, Table};

/// A table with these column headers.
pub fn new(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING).set_header(header.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Aligns these columns (numbers) to the right.
pub fn right(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Prints the table, without trailing blanks.
pub fn print(t: &Table) {
    println!("{}", t.trim_fmt());
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_are_plain_columns() {
        let mut t = super::new(&["NAME", "OPEN"]);
        t.add_row(vec!["default".to_owned(), "12".to_owned()]);
        t.add_row(vec!["b".to_owned(), "3".to_owned()]);
        super::right(&mut t, &[1]);
        assert_eq!(t.trim_fmt(), "NAME     OPEN\ndefault    12\nb           3");
    }
}
