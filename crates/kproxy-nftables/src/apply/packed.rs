//! Elements kept compactly: what was committed is only read again for the few service
//! ports a partial sync touches, so each port's elements are stored as one text (a record
//! per element) instead of two strings per element.

use super::script::ElementRef;
use crate::render::Element;

/// Separates an element's set, key and value within its record.
const FIELD: char = '\u{1f}';
/// Ends an element's record.
const RECORD: char = '\u{1e}';

/// The names of the sets elements belong to, each stored once; records name a set by its
/// index here.
#[derive(Debug, Default)]
pub(crate) struct SetNames(Vec<&'static str>);

impl SetNames {
    fn position(&self, set: &str) -> Option<usize> {
        self.0.iter().position(|s| *s == set)
    }

    fn index(&mut self, set: &'static str) -> usize {
        match self.position(set) {
            Some(i) => i,
            None => {
                self.0.push(set);
                self.0.len() - 1
            }
        }
    }

    /// Appends `element`'s record to `out`.
    pub(crate) fn write(&mut self, out: &mut String, element: &Element) {
        let index = self.index(element.set);
        write_record(out, index, element);
    }

    /// One element's record.
    pub(crate) fn record(&mut self, element: &Element) -> Box<str> {
        let mut out = String::new();
        self.write(&mut out, element);
        out.into_boxed_str()
    }

    /// `element`'s record, if its set has an index already (otherwise no record of it
    /// was ever written).
    pub(crate) fn known_record(&self, element: &Element) -> Option<Box<str>> {
        let mut out = String::new();
        write_record(&mut out, self.position(element.set)?, element);
        Some(out.into_boxed_str())
    }

    /// The elements of `records` (written by this [`SetNames`]), borrowed from them.
    pub(crate) fn read_refs<'a>(&'a self, records: &'a str) -> impl Iterator<Item = ElementRef<'a>> + 'a {
        records.split_terminator(RECORD).filter_map(|record| {
            let mut fields = record.splitn(3, FIELD);
            let set = self.0.get(fields.next()?.parse::<usize>().ok()?)?;
            Some(ElementRef { set, key: fields.next()?, value: fields.next() })
        })
    }

    /// The elements of `records` (written by this [`SetNames`]).
    pub(crate) fn read<'a>(&'a self, records: &'a str) -> impl Iterator<Item = Element> + 'a {
        self.read_refs(records).map(|e| Element {
            set: e.set,
            key: e.key.to_owned(),
            value: e.value.map(str::to_owned),
        })
    }
}

/// Appends the record of `element`, of the set at `index`, to `out`.
fn write_record(out: &mut String, index: usize, element: &Element) {
    debug_assert!(!element.key.contains([FIELD, RECORD]), "element keys are nft text");
    out.push_str(&index.to_string());
    out.push(FIELD);
    out.push_str(&element.key);
    if let Some(value) = &element.value {
        debug_assert!(!value.contains([FIELD, RECORD]), "element values are nft text");
        out.push(FIELD);
        out.push_str(value);
    }
    out.push(RECORD);
}

/// The elements of one port, as records.
pub(crate) fn pack<'a>(names: &mut SetNames, elements: impl IntoIterator<Item = &'a Element>) -> Box<str> {
    let mut out = String::new();
    for element in elements {
        names.write(&mut out, element);
    }
    out.into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_come_back_as_they_were_packed() {
        let elements = [
            Element { set: "service-ips", key: "172.30.0.1 . tcp . 80".into(), value: Some("goto x".into()) },
            Element { set: "hairpin", key: "10.0.0.1 . 10.0.0.1".into(), value: None },
            Element { set: "service-ips", key: "172.30.0.2 . tcp . 80".into(), value: Some(String::new()) },
        ];
        let mut names = SetNames::default();
        let packed = pack(&mut names, &elements);
        assert_eq!(names.read(&packed).collect::<Vec<_>>(), elements);
        assert_eq!(names.0, ["service-ips", "hairpin"], "each set name once");
        let unknown = Element { set: "other", key: "x".into(), value: None };
        assert_eq!(names.known_record(&unknown), None, "no record of an unknown set");
        let record = names.record(&elements[1]);
        assert_eq!(names.known_record(&elements[1]), Some(record.clone()));
        assert_eq!(names.read(&record).collect::<Vec<_>>(), [elements[1].clone()]);
    }
}
