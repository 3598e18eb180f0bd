//! The items of a FETCH, parsed once from imap-types' tree into what the
//! answer is built from, with the bounds that keep one FETCH's work small.

use imap_types::core::AString;
use imap_types::fetch::{Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section};

use crate::imap::outcome::Failure;
use crate::imap::response::Code;
use crate::mime::{SectionSpec, SectionText};

/// One thing to answer for each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Uid,
    Flags,
    /// `MODSEQ` (RFC 7162 3.1.4.1).
    ModSeq,
    InternalDate,
    Size,
    Envelope,
    BodyStructure,
    Body,
    /// `BODY[...]`, `RFC822`, `RFC822.HEADER`, `RFC822.TEXT`.
    Section {
        label: String,
        spec: SectionSpec,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
}

impl Item {
    pub(super) fn section_spec(&self) -> Option<&SectionSpec> {
        match self {
            Item::Section { spec, .. } => Some(spec),
            _ => None,
        }
    }

    pub(super) fn needs_bytes(&self) -> bool {
        matches!(self, Item::Section { .. })
    }

    pub(super) fn sets_seen(&self) -> bool {
        matches!(self, Item::Section { peek: false, .. })
    }
}

/// Most items one FETCH may name. Real clients name a dozen; every item is
/// work for every message, so the product is what must stay bounded.
pub const MAX_FETCH_ITEMS: usize = 256;

pub(super) fn parse_items(items: &MacroOrMessageDataItemNames<'_>) -> Result<Vec<Item>, Failure> {
    let names: Vec<MessageDataItemName<'_>> = match items {
        MacroOrMessageDataItemNames::Macro(Macro::Fast) => vec![
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::Rfc822Size,
        ],
        MacroOrMessageDataItemNames::Macro(Macro::All) => vec![
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::Rfc822Size,
            MessageDataItemName::Envelope,
        ],
        MacroOrMessageDataItemNames::Macro(Macro::Full) => vec![
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::Rfc822Size,
            MessageDataItemName::Envelope,
            MessageDataItemName::Body,
        ],
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names.clone(),
        MacroOrMessageDataItemNames::Macro(other) => {
            return Err(Failure::bad_with(
                Code::ClientBug,
                format!("FETCH macro {other:?} is not supported"),
            ));
        }
    };
    if names.len() > MAX_FETCH_ITEMS {
        return Err(Failure::bad_with(
            Code::Limit,
            format!("FETCH names more than {MAX_FETCH_ITEMS} items"),
        ));
    }
    let mut items = Vec::with_capacity(names.len());
    for name in names {
        let item = match name {
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::BodyStructure => Item::BodyStructure,
            MessageDataItemName::Body => Item::Body,
            MessageDataItemName::ModSeq => Item::ModSeq,
            MessageDataItemName::Rfc822 => {
                section_item("RFC822".into(), whole_message(), None, false)
            }
            MessageDataItemName::Rfc822Header => section_item(
                "RFC822.HEADER".into(),
                SectionSpec {
                    part: Vec::new(),
                    text: SectionText::Header,
                },
                None,
                true,
            ),
            MessageDataItemName::Rfc822Text => section_item(
                "RFC822.TEXT".into(),
                SectionSpec {
                    part: Vec::new(),
                    text: SectionText::Text,
                },
                None,
                false,
            ),
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                let (spec, label) = section_spec(section.as_ref());
                section_item(
                    format!("BODY[{label}]"),
                    spec,
                    partial.map(|(s, l)| (s, l.get())),
                    peek,
                )
            }
            other => {
                return Err(Failure::bad_with(
                    Code::ClientBug,
                    format!("FETCH item {other:?} is not supported"),
                ));
            }
        };
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

fn whole_message() -> SectionSpec {
    SectionSpec {
        part: Vec::new(),
        text: SectionText::Full,
    }
}

fn section_item(label: String, spec: SectionSpec, partial: Option<(u32, u32)>, peek: bool) -> Item {
    Item::Section {
        label,
        spec,
        partial,
        peek,
    }
}

fn part_numbers(part: Option<&Part>) -> Vec<u32> {
    part.map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
        .unwrap_or_default()
}

fn part_label(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn field_names(names: &[AString<'_>]) -> Vec<String> {
    names
        .iter()
        .map(|n| String::from_utf8_lossy(n.as_ref()).into_owned())
        .collect()
}

/// Our section spec, and its label as echoed in the answer.
fn section_spec(section: Option<&Section<'_>>) -> (SectionSpec, String) {
    let Some(section) = section else {
        return (whole_message(), String::new());
    };
    let join = |part: &[u32], suffix: &str| {
        let prefix = part_label(part);
        match (prefix.is_empty(), suffix.is_empty()) {
            (true, _) => suffix.to_owned(),
            (false, true) => prefix,
            (false, false) => format!("{prefix}.{suffix}"),
        }
    };
    let (part, text, suffix) = match section {
        Section::Part(part) => (part_numbers(Some(part)), SectionText::Full, String::new()),
        Section::Header(part) => (
            part_numbers(part.as_ref()),
            SectionText::Header,
            "HEADER".to_owned(),
        ),
        Section::HeaderFields(part, names) => {
            let names = field_names(names.as_ref());
            let label = format!("HEADER.FIELDS ({})", names.join(" "));
            (
                part_numbers(part.as_ref()),
                SectionText::HeaderFields(names),
                label,
            )
        }
        Section::HeaderFieldsNot(part, names) => {
            let names = field_names(names.as_ref());
            let label = format!("HEADER.FIELDS.NOT ({})", names.join(" "));
            (
                part_numbers(part.as_ref()),
                SectionText::HeaderFieldsNot(names),
                label,
            )
        }
        Section::Text(part) => (
            part_numbers(part.as_ref()),
            SectionText::Text,
            "TEXT".to_owned(),
        ),
        Section::Mime(part) => (
            part_numbers(Some(part)),
            SectionText::Mime,
            "MIME".to_owned(),
        ),
    };
    let label = join(&part, &suffix);
    (SectionSpec { part, text }, label)
}
