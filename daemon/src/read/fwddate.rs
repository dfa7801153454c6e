//! Dates as forwarded header blocks print them, in many languages and layouts:
//! "Thu, 6 April 2023 at 16:17", "Wednesday, October 27, 2021 15:14", "28/10/2021 12:46",
//! "Dienstag, 2. November 2021, 09:26:50 MEZ", "2021. november 2., kedd 09:26:50 CET",
//! "2022年9月19日月曜日 17:55:44 -0400", RFC 5322 dates…
//!
//! Reading is best effort: None when the day, month and year cannot all be found. Numeric dates
//! are read day first (schools here write 28/10/2021), unless the first number cannot be a
//! day-of-month order or the time uses AM/PM.
//!
//! A zone given in the text (`+0100`, `GMT+1`, `CET`) is kept as given. Gmail and Outlook print
//! the original's time in the forwarder's local time with no zone, so [`parse_in`] reads such a
//! time in the zone it is given (the school's), with the offset in force on that day:
//! - a time that occurs twice (the hour the clocks go back) is read as the first occurrence,
//!   in summer time, the earlier instant;
//! - a time that does not exist (the hour the clocks go forward) is read with the offset in
//!   force before the change, so "01:30" on the spring change in London is 01:30 GMT
//!   (02:30 BST), the instant a clock that had not been put forward would show.

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;

/// Month names and their inflected forms, by month, in the languages of [`super::labels`].
/// Matching takes the longest form a word starts with, so "marraskuuta" is November, not March.
static MONTHS: &[(u32, &[&str])] = &[
    (
        1,
        &[
            "janúar",
            "јануари",
            "јануар",
            "ינואר",
            "يناير",
            "ιανουαρίου",
            "ιανουάριος",
            "ιαν",
            "януари",
            "sausio",
            "sausis",
            "janvāris",
            "janvārī",
            "ionawr",
            "januar",
            "ianuarie",
            "january",
            "jan",
            "januar",
            "janvier",
            "janv",
            "enero",
            "ene",
            "gennaio",
            "gen",
            "januari",
            "januára",
            "janeiro",
            "janeiro",
            "tammikuu",
            "leden",
            "ledna",
            "január",
            "stycznia",
            "styczeń",
            "sty",
            "ianuarie",
            "января",
            "январь",
            "янв",
            "ocak",
            "січня",
            "січень",
            "siječnja",
            "siječanj",
            "jaanuar",
            "jänner",
        ],
    ),
    (
        2,
        &[
            "febrúar",
            "февруари",
            "фебруар",
            "פברואר",
            "فبراير",
            "φεβρουαρίου",
            "φεβρουάριος",
            "φεβ",
            "февруари",
            "vasario",
            "vasaris",
            "februāris",
            "februārī",
            "chwefror",
            "februari",
            "february",
            "feb",
            "februar",
            "février",
            "févr",
            "febrero",
            "febbraio",
            "februari",
            "fevereiro",
            "fev",
            "helmikuu",
            "únor",
            "února",
            "február",
            "februára",
            "lutego",
            "luty",
            "lut",
            "februarie",
            "февраля",
            "февраль",
            "фев",
            "şubat",
            "лютого",
            "лютий",
            "veljače",
            "veljača",
            "veebruar",
        ],
    ),
    (
        3,
        &[
            "מרץ",
            "مارس",
            "μαρτίου",
            "μάρτιος",
            "μαρ",
            "kovo",
            "kovas",
            "martā",
            "mawrth",
            "marec",
            "maret",
            "march",
            "mar",
            "märz",
            "mars",
            "marzo",
            "maart",
            "março",
            "maaliskuu",
            "březen",
            "března",
            "március",
            "marca",
            "marzec",
            "martie",
            "марта",
            "март",
            "mart",
            "березня",
            "березень",
            "ožujka",
            "ožujak",
            "marts",
            "mär",
            "marec",
            "märts",
        ],
    ),
    (
        4,
        &[
            "apríl",
            "אפריל",
            "أبريل",
            "ابريل",
            "απριλίου",
            "απρίλιος",
            "απρ",
            "април",
            "balandžio",
            "balandis",
            "aprīlis",
            "aprīlī",
            "ebrill",
            "april",
            "apr",
            "avril",
            "avr",
            "abril",
            "abr",
            "aprile",
            "huhtikuu",
            "duben",
            "dubna",
            "április",
            "apríla",
            "kwietnia",
            "kwiecień",
            "kwi",
            "aprilie",
            "апреля",
            "апрель",
            "апр",
            "nisan",
            "квітня",
            "квітень",
            "travnja",
            "travanj",
            "aprill",
        ],
    ),
    (
        5,
        &[
            "maí",
            "мај",
            "מאי",
            "مايو",
            "μαΐου",
            "μάιος",
            "μαΐ",
            "gegužės",
            "gegužė",
            "maijs",
            "maijā",
            "may",
            "mai",
            "mayo",
            "maggio",
            "mei",
            "maio",
            "toukokuu",
            "květen",
            "května",
            "május",
            "mája",
            "maja",
            "maj",
            "мая",
            "май",
            "mayıs",
            "травня",
            "травень",
            "svibnja",
            "svibanj",
        ],
    ),
    (
        6,
        &[
            "júní",
            "јуни",
            "јун",
            "יוני",
            "يونيو",
            "ιουνίου",
            "ιούνιος",
            "ιουν",
            "юни",
            "birželio",
            "birželis",
            "jūnijs",
            "jūnijā",
            "mehefin",
            "junij",
            "june",
            "jun",
            "juni",
            "juin",
            "junio",
            "giugno",
            "junho",
            "kesäkuu",
            "červen",
            "června",
            "június",
            "júna",
            "czerwca",
            "czerwiec",
            "cze",
            "iunie",
            "июня",
            "июнь",
            "haziran",
            "червня",
            "червень",
            "lipnja",
            "lipanj",
            "juuni",
        ],
    ),
    (
        7,
        &[
            "júlí",
            "јули",
            "јул",
            "יולי",
            "يوليو",
            "ιουλίου",
            "ιούλιος",
            "ιουλ",
            "юли",
            "liepos",
            "liepa",
            "jūlijs",
            "jūlijā",
            "gorffennaf",
            "julij",
            "july",
            "jul",
            "juli",
            "juillet",
            "juil",
            "julio",
            "luglio",
            "lug",
            "julho",
            "heinäkuu",
            "červenec",
            "července",
            "július",
            "júla",
            "lipca",
            "lipiec",
            "lip",
            "iulie",
            "июля",
            "июль",
            "temmuz",
            "липня",
            "липень",
            "srpnja",
            "srpanj",
            "juuli",
        ],
    ),
    (
        8,
        &[
            "ágúst",
            "אוגוסט",
            "أغسطس",
            "اغسطس",
            "αυγούστου",
            "αύγουστος",
            "αυγ",
            "rugpjūčio",
            "rugpjūtis",
            "augustā",
            "awst",
            "avgust",
            "agustus",
            "august",
            "aug",
            "août",
            "agosto",
            "ago",
            "augustus",
            "elokuu",
            "srpen",
            "srpna",
            "augusztus",
            "augusta",
            "sierpnia",
            "sierpień",
            "sie",
            "august",
            "августа",
            "август",
            "авг",
            "ağustos",
            "серпня",
            "серпень",
            "kolovoza",
            "kolovoz",
            "aout",
        ],
    ),
    (
        9,
        &[
            "септембар",
            "ספטמבר",
            "سبتمبر",
            "σεπτεμβρίου",
            "σεπτέμβριος",
            "σεπ",
            "септември",
            "rugsėjo",
            "rugsėjis",
            "septembris",
            "septembrī",
            "medi",
            "septembar",
            "september",
            "sep",
            "sept",
            "septembre",
            "septiembre",
            "settembre",
            "set",
            "setembro",
            "syyskuu",
            "září",
            "szeptember",
            "septembra",
            "września",
            "wrzesień",
            "wrz",
            "septembrie",
            "сентября",
            "сентябрь",
            "сен",
            "eylül",
            "вересня",
            "вересень",
            "rujna",
            "rujan",
        ],
    ),
    (
        10,
        &[
            "október",
            "октобар",
            "אוקטובר",
            "أكتوبر",
            "اكتوبر",
            "οκτωβρίου",
            "οκτώβριος",
            "οκτ",
            "октомври",
            "spalio",
            "spalis",
            "oktobris",
            "oktobrī",
            "hydref",
            "oktobar",
            "october",
            "oct",
            "oktober",
            "octobre",
            "octubre",
            "ottobre",
            "ott",
            "outubro",
            "out",
            "lokakuu",
            "říjen",
            "října",
            "október",
            "októbra",
            "października",
            "październik",
            "paź",
            "octombrie",
            "октября",
            "октябрь",
            "окт",
            "ekim",
            "жовтня",
            "жовтень",
            "okt",
        ],
    ),
    (
        11,
        &[
            "nóvember",
            "новембар",
            "נובמבר",
            "نوفمبر",
            "νοεμβρίου",
            "νοέμβριος",
            "νοε",
            "ноември",
            "lapkričio",
            "lapkritis",
            "novembris",
            "novembrī",
            "tachwedd",
            "novembar",
            "november",
            "nov",
            "novembre",
            "noviembre",
            "novembro",
            "marraskuu",
            "listopadu",
            "listopad",
            "novembra",
            "listopada",
            "noiembrie",
            "ноября",
            "ноябрь",
            "ноя",
            "kasım",
            "листопада",
            "листопад",
            "studenoga",
            "studeni",
        ],
    ),
    (
        12,
        &[
            "desember",
            "децембар",
            "דצמבר",
            "ديسمبر",
            "δεκεμβρίου",
            "δεκέμβριος",
            "δεκ",
            "декември",
            "gruodžio",
            "gruodis",
            "decembris",
            "decembrī",
            "rhagfyr",
            "decembar",
            "december",
            "dec",
            "dezember",
            "décembre",
            "déc",
            "diciembre",
            "dic",
            "dicembre",
            "december",
            "dezembro",
            "dez",
            "joulukuu",
            "prosinec",
            "prosince",
            "decembra",
            "grudnia",
            "grudzień",
            "gru",
            "decembrie",
            "декабря",
            "декабрь",
            "дек",
            "aralık",
            "грудня",
            "грудень",
            "prosinca",
            "prosinac",
            "detsember",
            "desember",
            "des",
        ],
    ),
];

/// Parses a header-block date, reading a time without a zone as UTC; None when it cannot be
/// read with confidence.
pub fn parse(text: &str) -> Option<DateTime<FixedOffset>> {
    parse_in(text, chrono_tz::UTC)
}

/// Parses a header-block date, reading a time without a zone in `zone` (see the module notes
/// for the DST changes); None when it cannot be read with confidence.
pub fn parse_in(text: &str, zone: Tz) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if text.is_empty() || text.len() > 200 {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(text) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d);
    }
    let lower = text.to_lowercase();
    let tokens = tokenize(&lower);
    let (time, pm, am, span) = find_time(&tokens);
    // Month-first numeric dates go with the English 12-hour clock, not with Korean or
    // Vietnamese halves of the day.
    let us_clock = span.is_some_and(|(_, end)| {
        matches!(end.checked_sub(1).and_then(|k| tokens.get(k)), Some(Tok::Word(w)) if matches!(w.as_str(), "am" | "pm" | "a" | "p"))
    });
    let given = find_zone(&tokens, span.map(|(_, end)| end));
    let date = find_date(&tokens, span, us_clock)?;
    let mut time = time.unwrap_or(NaiveTime::MIN);
    if pm || am {
        use chrono::Timelike;
        let h = time.hour() % 12 + if pm { 12 } else { 0 };
        time = time.with_hour(h)?;
    }
    let local = date.and_time(time);
    match given {
        Some(offset) => offset.from_local_datetime(&local).single(),
        None => in_zone(local, zone),
    }
}

/// A local wall-clock time in `zone`: the first occurrence when it repeats, the offset from
/// before the change when it falls in the gap.
fn in_zone(local: NaiveDateTime, zone: Tz) -> Option<DateTime<FixedOffset>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(d) => Some(d.fixed_offset()),
        LocalResult::Ambiguous(first, _) => Some(first.fixed_offset()),
        LocalResult::None => {
            let before = zone.from_local_datetime(&(local - Duration::days(1))).earliest()?.offset().fix();
            before.from_local_datetime(&local).single()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Word(String),
    Sym(char),
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    n.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Num(n));
        } else if c.is_alphabetic() && !is_cjk_date_mark(c) {
            let mut w = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_alphabetic() && !is_cjk_date_mark(d) || d == '\u{307}' {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Word(w));
        } else {
            if !c.is_whitespace() {
                out.push(Tok::Sym(c));
            }
            chars.next();
        }
    }
    out
}

fn is_cjk_date_mark(c: char) -> bool {
    matches!(c, '年' | '月' | '日' | '时' | '時' | '分' | '秒')
}

fn num(t: Option<&Tok>) -> Option<u32> {
    match t {
        Some(Tok::Num(n)) if n.len() <= 4 => n.parse().ok(),
        _ => None,
    }
}

/// The first `H:MM[:SS]` or `H.MM.SS` (with `klo`/`at` words ignored); whether AM/PM follows;
/// and the index of the token after the time.
fn find_time(tokens: &[Tok]) -> (Option<NaiveTime>, bool, bool, Option<(usize, usize)>) {
    for i in 0..tokens.len() {
        let (Some(h), Some(sep)) = (num(tokens.get(i)), tokens.get(i + 1)) else {
            continue;
        };
        let sep = match sep {
            Tok::Sym(c @ (':' | '.')) => *c,
            _ => continue,
        };
        let Some(m) = num(tokens.get(i + 2)) else {
            continue;
        };
        let mut end = i + 3;
        let mut s = 0;
        if tokens.get(i + 3) == Some(&Tok::Sym(sep))
            && let Some(sec) = num(tokens.get(i + 4))
        {
            s = sec;
            end = i + 5;
        } else if sep == '.' {
            // "2.11" could be a date: a dotted time needs seconds, or to follow the year or
            // "klo" as Finnish writes it ("2. marraskuuta 2021 9.26", "klo 9.26").
            let after_year_or_klo = match i.checked_sub(1).and_then(|k| tokens.get(k)) {
                Some(Tok::Num(n)) => n.len() == 4,
                Some(Tok::Word(w)) => w == "klo",
                _ => false,
            };
            if !after_year_or_klo || matches!(tokens.get(i + 3), Some(Tok::Sym('.'))) {
                continue;
            }
        }
        if h > 23 || m > 59 || s > 60 {
            continue;
        }
        // A numeric date like 28.10.2021 is not a time: its third number is a year.
        if let Some(Tok::Num(n)) = tokens.get(i + 4)
            && n.len() == 4
        {
            continue;
        }
        let time = NaiveTime::from_hms_opt(h, m, s.min(59));
        let (mut pm, mut am) = (false, false);
        if let Some(Tok::Word(w)) = tokens.get(end) {
            pm = w == "pm" || w == "p" || w == "ch" || w == "م";
            am = w == "am" || w == "a" || w == "sa" || w == "ص";
            if pm || am {
                end += 1;
            }
        }
        // Korean, Japanese and Chinese write the half of the day before the time ("오후 9:26").
        if let Some(Tok::Word(w)) = i.checked_sub(1).and_then(|k| tokens.get(k))
            && !(pm || am)
        {
            pm = w.ends_with("오후") || w.ends_with("午後") || w.ends_with("下午");
            am = w.ends_with("오전") || w.ends_with("午前") || w.ends_with("上午");
        }
        return (time, pm, am, Some((i, end)));
    }
    (None, false, false, None)
}

/// A zone after the time: `+0100`, `-04:00`, `GMT+1`, `UTC+01:00`, or a known abbreviation.
fn find_zone(tokens: &[Tok], after: Option<usize>) -> Option<FixedOffset> {
    let start = after?;
    let rest = tokens.get(start..)?;
    let mut i = 0;
    let mut base = 0i32;
    if let Some(Tok::Word(w)) = rest.first() {
        if let Some(off) = abbreviation(w) {
            base = off;
            i = 1;
            if !matches!(rest.get(1), Some(Tok::Sym('+' | '-'))) {
                return FixedOffset::east_opt(base);
            }
        } else {
            return None;
        }
    }
    if let (Some(Tok::Sym(sign @ ('+' | '-'))), Some(Tok::Num(n))) = (rest.get(i), rest.get(i + 1)) {
        let sign = if *sign == '-' { -1 } else { 1 };
        let (h, m) = match n.len() {
            1 | 2 => {
                let h: i32 = n.parse().ok()?;
                let m = if rest.get(i + 2) == Some(&Tok::Sym(':')) { num(rest.get(i + 3)).unwrap_or(0) as i32 } else { 0 };
                (h, m)
            }
            4 => (n.get(..2)?.parse().ok()?, n.get(2..)?.parse().ok()?),
            _ => return None,
        };
        if h > 14 || m > 59 {
            return None;
        }
        return FixedOffset::east_opt(base + sign * (h * 3600 + m * 60));
    }
    if i == 1 { FixedOffset::east_opt(base) } else { None }
}

fn abbreviation(w: &str) -> Option<i32> {
    let h = 3600;
    Some(match w {
        "gmt" | "utc" | "ut" | "z" | "wet" => 0,
        "bst" | "cet" | "mez" | "seč" | "west" | "ist" => h,
        "cest" | "mesz" | "eet" | "sel" | "eest" => 2 * h,
        "msk" => 3 * h,
        "est" => -5 * h,
        "edt" | "cst" => {
            if w == "edt" {
                -4 * h
            } else {
                -6 * h
            }
        }
        "cdt" => -5 * h,
        "mst" => -7 * h,
        "mdt" => -6 * h,
        "pst" => -8 * h,
        "pdt" => -7 * h,
        "jst" => 9 * h,
        _ => return None,
    })
}

fn month_of(word: &str) -> Option<u32> {
    let mut best: Option<(usize, u32)> = None;
    for (month, forms) in MONTHS {
        for form in *forms {
            // A form of up to four letters must be the whole word; a longer one a prefix.
            if !word.starts_with(form) {
                continue;
            }
            let fits = word.len() == form.len() || form.chars().count() > 4;
            if fits && best.is_none_or(|(len, _)| form.len() > len) {
                best = Some((form.len(), *month));
            }
        }
    }
    best.map(|(_, m)| m)
}

/// Day, month and year from the tokens that are not the time.
fn find_date(tokens: &[Tok], time_span: Option<(usize, usize)>, us_clock: bool) -> Option<NaiveDate> {
    let time_start = time_span;
    let in_time = |i: usize| time_start.is_some_and(|(s, e)| i >= s && i < e);

    let mut month = None;
    let mut nums: Vec<(usize, String)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if in_time(i) {
            continue;
        }
        match t {
            // "Dydd Mawrth" is Welsh for Tuesday, not March.
            Tok::Word(w)
                if month.is_none() && !matches!(i.checked_sub(1).and_then(|k| tokens.get(k)), Some(Tok::Word(d)) if d == "dydd") =>
            {
                month = month_of(w)
            }
            Tok::Num(n) => {
                // Skip the zone offset digits ("+0100", "GMT+1").
                if i > 0 && matches!(tokens.get(i - 1), Some(Tok::Sym('+' | '-'))) && time_start.is_some_and(|(_, e)| i >= e) {
                    continue;
                }
                nums.push((i, n.clone()));
            }
            _ => {}
        }
    }
    let year_pos = nums.iter().position(|(_, n)| n.len() == 4)?;
    let year: i32 = nums.get(year_pos)?.1.parse().ok()?;
    let others: Vec<u32> =
        nums.iter().enumerate().filter(|(k, (_, n))| *k != year_pos && n.len() <= 2).filter_map(|(_, (_, n))| n.parse().ok()).collect();
    if let Some(m) = month {
        let day = *others.first()?;
        return NaiveDate::from_ymd_opt(year, m, day);
    }
    let (a, b) = (*others.first()?, *others.get(1)?);
    if year_pos == 0 {
        // ISO and Hungarian/CJK order: year, month, day.
        return NaiveDate::from_ymd_opt(year, a, b);
    }
    let (day, month) = if a > 12 {
        (a, b)
    } else if b > 12 || us_clock {
        (b, a)
    } else {
        (a, b)
    };
    NaiveDate::from_ymd_opt(year, month, day)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn p(s: &str) -> String {
        parse(s).map(|d| d.to_rfc3339()).unwrap_or_else(|| "none".into())
    }

    #[test]
    fn english_layouts() {
        assert_eq!(p("Thu, 6 April 2023 at 16:17"), "2023-04-06T16:17:00+00:00");
        assert_eq!(p("Wed, Oct 27, 2021 at 9:31 AM"), "2021-10-27T09:31:00+00:00");
        assert_eq!(p("Wednesday, October 27, 2021 15:14"), "2021-10-27T15:14:00+00:00");
        assert_eq!(p("Tuesday, November 2, 2021, 09:26:50 AM GMT+1"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("Monday, September 19, 2022, 5:55:44 PM -0400"), "2022-09-19T17:55:44-04:00");
        assert_eq!(p("Wed, 3 Nov 2021 15:51:30 +0100"), "2021-11-03T15:51:30+01:00");
        assert_eq!(p("28/10/2021 12:46"), "2021-10-28T12:46:00+00:00");
        assert_eq!(p("02/10/2023 4:52 PM EST"), "2023-02-10T16:52:00-05:00");
        assert_eq!(p("July 19, 2022 at 3:09 PM"), "2022-07-19T15:09:00+00:00");
        assert_eq!(p("Monday, 1 August 2022 11:11 pm"), "2022-08-01T23:11:00+00:00");
    }

    #[test]
    fn other_languages() {
        assert_eq!(p("úterý 2. listopadu 2021 09:26:50 SEČ"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("tirsdag den 2. november 2021 09.26.50 CET"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("Dienstag, 2. November 2021, 09:26:50 MEZ"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("martes, 2 de noviembre de 2021 09:26:50 CET"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("tiistaina 2. marraskuuta 2021 klo 09.26.50 UTC+1"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("2021. november 2., kedd 09:26:50 CET"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("2 Kasım 2021 Salı 09:26:50 GMT+1"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("вівторок, 2 листопада 2021 р., 09:26:50 GMT+1"), "2021-11-02T09:26:50+01:00");
        assert_eq!(p("2022年9月19日月曜日 17:55:44 -0400"), "2022-09-19T17:55:44-04:00");
        assert_eq!(p("mercredi 27 octobre 2021 à 15:14"), "2021-10-27T15:14:00+00:00");
    }

    fn london(s: &str) -> String {
        super::parse_in(s, chrono_tz::Europe::London).map(|d| d.to_rfc3339()).unwrap_or_else(|| "none".into())
    }

    #[test]
    fn zone_less_times_are_the_schools() {
        // Summer (BST) and winter (GMT), Gmail and Outlook layouts.
        assert_eq!(london("Mon, 8 Jun 2026 at 21:14"), "2026-06-08T21:14:00+01:00");
        assert_eq!(london("Monday, June 8, 2026 9:14 PM"), "2026-06-08T21:14:00+01:00");
        assert_eq!(london("Tue, 8 Dec 2026 at 21:14"), "2026-12-08T21:14:00+00:00");
        // Spring change, 29 March 2026 01:00 GMT -> 02:00 BST.
        assert_eq!(london("29/03/2026 00:59"), "2026-03-29T00:59:00+00:00");
        assert_eq!(london("29/03/2026 01:30"), "2026-03-29T01:30:00+00:00");
        assert_eq!(london("29/03/2026 02:00"), "2026-03-29T02:00:00+01:00");
        // Autumn change, 25 October 2026 02:00 BST -> 01:00 GMT: 01:30 happens twice.
        assert_eq!(london("25/10/2026 00:59"), "2026-10-25T00:59:00+01:00");
        assert_eq!(london("25/10/2026 01:30"), "2026-10-25T01:30:00+01:00");
        assert_eq!(london("25/10/2026 02:00"), "2026-10-25T02:00:00+00:00");
        // An explicit zone is kept as given.
        assert_eq!(london("Mon, 8 Jun 2026 21:14:00 +0000"), "2026-06-08T21:14:00+00:00");
        assert_eq!(london("Monday, June 8, 2026, 9:14:00 PM GMT+2"), "2026-06-08T21:14:00+02:00");
        // New York: gap at 02:00 on 8 March 2026, the repeat at 01:00 on 1 November.
        let ny = |s: &str| super::parse_in(s, chrono_tz::America::New_York).map(|d| d.to_rfc3339());
        assert_eq!(ny("03/08/2026 2:30 AM").as_deref(), Some("2026-03-08T02:30:00-05:00"));
        assert_eq!(ny("11/01/2026 1:30 AM").as_deref(), Some("2026-11-01T01:30:00-04:00"));
    }

    #[test]
    fn outlook_long_dates_in_more_languages() {
        let want = "2021-11-02T09:26:00+00:00";
        for text in [
            "tiistai 2. marraskuuta 2021 9.26",
            "Τρίτη, 2 Νοεμβρίου 2021 9:26",
            "2 ноември 2021 г. 9:26",
            "2021 m. lapkričio 2 d. 9:26",
            "otrdiena, 2021. gada 2. novembris 9:26",
            "Dydd Mawrth, 2 Tachwedd 2021 09:26",
            "2021년 11월 2일 화요일 오전 9:26",
            "Thứ Ba, 2 tháng 11, 2021 9:26 SA",
            "2. novembar 2021. 9:26",
            "torek, 02. november 2021 9:26",
            "þriðjudagur, 2. nóvember 2021 09:26",
            "вторник, 2 ноември 2021 09:26",
            "уторак, 2. новембар 2021. 09:26",
            "יום שלישי 02 נובמבר 2021 09:26",
            "الثلاثاء، 2 نوفمبر، 2021 9:26 ص",
        ] {
            assert_eq!(p(text), want, "{text}");
        }
        assert_eq!(p("2021년 11월 2일 화요일 오후 2:26"), "2021-11-02T14:26:00+00:00");
        assert_eq!(p("Thứ Ba, 2 tháng 11, 2021 2:26 CH"), "2021-11-02T14:26:00+00:00");
        assert_eq!(p("الثلاثاء، 2 نوفمبر، 2021 2:26 م"), "2021-11-02T14:26:00+00:00");
    }

    #[test]
    fn unreadable_is_none() {
        assert_eq!(p("yesterday"), "none");
        assert_eq!(p(""), "none");
    }
}
