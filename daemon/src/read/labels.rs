//! The words mail clients write around a forwarded or quoted message, in every language we know:
//! header labels ("From:", "Von:", "Od:" …), forward separators ("Begin forwarded message:",
//! "---------- Forwarded message ---------" …) and subject prefixes ("Fwd:", "WG:", "AW:" …).
//!
//! Data only, plus the small matchers that use it. The label sets follow what Apple Mail, Gmail,
//! Outlook (desktop, web, new), Thunderbird, Yahoo Mail, HubSpot, Missive, MailMate and IONOS
//! write in each locale.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A field of a forwarded message's header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    From,
    To,
    Cc,
    Date,
    Subject,
    ReplyTo,
}

/// One locale's header labels. Clients of one locale glue labels together (Yahoo Mail writes the
/// whole header on one line), so they are kept per language to split such lines safely.
pub struct Lang {
    pub from: &'static [&'static str],
    pub to: &'static [&'static str],
    pub cc: &'static [&'static str],
    pub date: &'static [&'static str],
    pub subject: &'static [&'static str],
    pub reply_to: &'static [&'static str],
}

impl Lang {
    pub fn fields(&self) -> [(Field, &'static [&'static str]); 6] {
        [
            (Field::From, self.from),
            (Field::To, self.to),
            (Field::Cc, self.cc),
            (Field::Date, self.date),
            (Field::Subject, self.subject),
            (Field::ReplyTo, self.reply_to),
        ]
    }
}

macro_rules! lang {
    ($from:expr, $to:expr, $cc:expr, $date:expr, $subject:expr, $reply_to:expr) => {
        Lang { from: &$from, to: &$to, cc: &$cc, date: &$date, subject: &$subject, reply_to: &$reply_to }
    };
}

/// Header labels by language (English first: other locales often keep "Cc" or "Date").
pub static LANGS: &[Lang] = &[
    // en
    lang!(["From"], ["To"], ["Cc", "CC", "Bcc"], ["Date", "Sent"], ["Subject"], ["Reply-To", "Reply To"]),
    // cs
    lang!(["Od"], ["Komu"], ["Kopie", "Cc"], ["Datum", "Odesláno"], ["Předmět"], ["Odpověď na"]),
    // da
    lang!(["Fra"], ["Til"], ["Cc", "Kopi"], ["Dato", "Sendt"], ["Emne"], ["Svar til"]),
    // de
    lang!(["Von"], ["An"], ["Kopie (CC)", "Kopie", "Cc", "CC"], ["Datum", "Gesendet"], ["Betreff"], ["Antwort an"]),
    // es
    lang!(["De"], ["Para"], ["Cc", "CC", "CCO", "Copia"], ["Fecha", "Enviado el", "Enviado"], ["Asunto"], ["Responder a"]),
    // fi
    lang!(["Lähettäjä"], ["Vastaanottaja"], ["Kopio", "Kopiot"], ["Päivämäärä", "Päiväys", "Lähetetty"], ["Aihe"], ["Vastaus"]),
    // fr
    lang!(["De"], ["À", "A", "Pour"], ["Cc", "Copie à", "Copie"], ["Date", "Envoyé"], ["Objet", "Sujet"], ["Répondre à"]),
    // hr
    lang!(["Šalje", "Od"], ["Prima", "Za"], ["Cc", "Kopija"], ["Datum", "Poslano"], ["Predmet", "Naslov"], ["Odgovori na"]),
    // hu
    lang!(["Feladó"], ["Címzett"], ["Másolatot kap", "Másolat"], ["Dátum", "Elküldve", "Küldve"], ["Tárgy"], ["Válaszcím"]),
    // it
    lang!(["Da", "Mittente"], ["A"], ["Cc"], ["Data", "Inviato"], ["Oggetto"], ["Rispondi a"]),
    // nl
    lang!(["Van"], ["Aan"], ["Cc", "CC", "Kopie"], ["Datum", "Verzonden"], ["Onderwerp"], ["Antwoord aan"]),
    // no
    lang!(["Fra"], ["Til"], ["Kopi", "Cc"], ["Dato", "Sendt"], ["Emne"], ["Svar til"]),
    // pl
    lang!(["Od", "Nadawca"], ["Do", "Adresat"], ["DW", "Dw", "Kopia"], ["Data", "Wysłano"], ["Temat"], ["Odpowiedź-do"]),
    // pt
    lang!(["De"], ["Para"], ["Cc", "CC", "Cópia"], ["Data", "Enviado", "Enviada"], ["Assunto"], ["Responder A", "Responder a"]),
    // ro
    lang!(["De la", "Expeditorul"], ["Către", "Destinatarul"], ["Cc"], ["Dată", "Trimis"], ["Subiectul", "Subiect"], ["Răspuns către"]),
    // ru
    lang!(["От", "Отправитель"], ["Кому"], ["Копия"], ["Дата", "Отправлено"], ["Тема"], ["Ответ-Кому"]),
    // sk
    lang!(["Od"], ["Komu", "Pre"], ["Kópia", "Kópia (Cc)"], ["Dátum", "Odoslané"], ["Predmet"], ["Odpovedať-Pre"]),
    // sv
    lang!(["Från"], ["Till"], ["Kopia", "Cc"], ["Datum", "Skickat"], ["Ämne"], ["Svara till"]),
    // tr
    lang!(
        ["Kimden", "Gönderen"],
        ["Kime"],
        ["Bilgi", "Cc"],
        ["Tarih", "Gönderilen", "Gönderildi", "Gönderme Tarihi"],
        ["Konu"],
        ["Yanıt Adresi"]
    ),
    // uk
    lang!(["Від кого", "Від"], ["Кому"], ["Копія"], ["Дата", "Відправлено", "Надіслано"], ["Тема"], ["Кому відповісти"]),
    // et
    lang!(["Saatja"], ["Saaja", "Adressaat"], ["Koopia"], ["Kuupäev", "Saatmisaeg", "Saadetud"], ["Teema"], ["Vastuse saaja"]),
    // sl
    lang!(["Od", "Pošiljatelj"], ["Za", "Prejemnik"], ["Kp", "Kopija"], ["Poslano", "Datum"], ["Zadeva"], ["Odgovor za"]),
    // sr (Latin)
    lang!(["Od", "Pošiljalac"], ["Za", "Prima"], ["Cc", "Kopija"], ["Poslato", "Datum"], ["Tema", "Predmet"], ["Odgovor za"]),
    // bg
    lang!(["От", "Подател"], ["До", "Получател"], ["Як", "Копие"], ["Изпратено", "Дата"], ["Относно", "Тема"], ["Отговор до"]),
    // el
    lang!(
        ["Από", "Αποστολέας"],
        ["Προς"],
        ["Κοιν.", "Κοιν", "Κοινοποίηση"],
        ["Στάλθηκε", "Ημερομηνία", "Εστάλη"],
        ["Θέμα"],
        ["Απάντηση σε"]
    ),
    // lt
    lang!(["Nuo", "Siuntėjas"], ["Kam", "Gavėjas"], ["Kopija"], ["Išsiųsta", "Data"], ["Tema"], ["Atsakyti"]),
    // lv
    lang!(["No", "Sūtītājs"], ["Kam", "Adresāts"], ["Kopija"], ["Nosūtīts", "Datums"], ["Tēma"], ["Atbildēt uz"]),
    // ca
    lang!(["De"], ["Per a", "A"], ["A/c", "Cc"], ["Enviat el", "Enviat", "Data"], ["Assumpte", "Tema"], ["Respon a"]),
    // cy
    lang!(["Oddi wrth"], ["At"], ["Cc", "Copi"], ["Anfonwyd", "Dyddiad"], ["Pwnc"], ["Ateb i"]),
    // ga
    lang!(["Ó"], ["Chuig"], ["Cc"], ["Seolta", "Dáta"], ["Ábhar"], ["Freagra chuig"]),
    // id
    lang!(["Dari"], ["Kepada"], ["Cc", "Tembusan"], ["Dikirim", "Tanggal"], ["Perihal", "Subjek"], ["Balas ke"]),
    // ms
    lang!(["Daripada"], ["Kepada"], ["Sk", "Cc"], ["Dihantar", "Tarikh"], ["Subjek", "Perkara"], ["Balas kepada"]),
    // vi
    lang!(["Từ", "Người gửi"], ["Đến", "Tới"], ["Cc", "Đồng gửi"], ["Đã gửi", "Ngày"], ["Chủ đề", "Tiêu đề"], ["Trả lời"]),
    // ko
    lang!(["보낸 사람"], ["받는 사람"], ["참조"], ["보낸 날짜", "날짜"], ["제목"], ["회신 대상"]),
    // is
    lang!(["Frá"], ["Til"], ["Afrit"], ["Sent", "Dagsetning"], ["Efni"], ["Svara til"]),
    // mk
    lang!(["Од"], ["До"], ["Копија"], ["Испратено", "Датум"], ["Тема", "Предмет"], ["Одговор до"]),
    // sr (Cyrillic)
    lang!(["Од"], ["За"], ["Копија"], ["Послато", "Датум"], ["Тема", "Предмет"], ["Одговор за"]),
    // he
    lang!(["מאת"], ["אל"], ["עותק"], ["נשלח", "תאריך"], ["נושא"], ["השב אל"]),
    // ar
    lang!(["من"], ["إلى"], ["نسخة"], ["تم الإرسال", "التاريخ"], ["الموضوع"], ["الرد إلى"]),
    // ja
    lang!(["差出人", "送信元", "送信者"], ["宛先", "送信先"], ["CC"], ["日付", "送信日時"], ["件名"], ["返信先"]),
    // zh
    lang!(["发件人", "寄件者"], ["收件人", "收件者"], ["抄送", "副本"], ["日期", "发送时间", "寄件日期"], ["主题", "主旨"], ["回复"]),
];

/// Phrases that name a forward, written alone on a line ("Begin forwarded message:") or between
/// dashes ("----- Forwarded Message -----"). Compared case-insensitively.
pub static FORWARD_PHRASES: &[&str] = &[
    "begin forwarded message",
    "forwarded message",
    "forwarded e-mail",
    "forwarded email",
    "začátek přeposílané zprávy",
    "přeposlaná zpráva",
    "start på videresendt besked",
    "videresendt meddelelse",
    "videresendt besked",
    "anfang der weitergeleiteten nachricht",
    "weitergeleitete nachricht",
    "inicio del mensaje reenviado",
    "mensaje reenviado",
    "välitetty viesti alkaa",
    "välitetty viesti / fwd.msg",
    "välitetty viesti",
    "edelleenlähetetty viesti",
    "début du message réexpédié",
    "début du message transféré",
    "message transféré",
    "message transmis",
    "započni proslijeđenu poruku",
    "proslijeđena poruka",
    "továbbított levél kezdete",
    "továbbított üzenet",
    "inizio messaggio inoltrato",
    "messaggio inoltrato",
    "begin doorgestuurd bericht",
    "doorgestuurd bericht",
    "videresendt melding",
    "początek przekazywanej wiadomości",
    "przekazana wiadomość",
    "treść przekazanej wiadomości",
    "início da mensagem reencaminhada",
    "início da mensagem encaminhada",
    "mensagem reencaminhada",
    "mensagem encaminhada",
    "începe mesajul redirecționat",
    "mesaj redirecționat",
    "начало переадресованного сообщения",
    "пересылаемое сообщение",
    "перенаправленное сообщение",
    "пересланное сообщение",
    "začiatok preposlanej správy",
    "preposlaná správa --- forwarded message",
    "preposlaná správa",
    "vidarebefordrat mejl",
    "vidarebefordrat meddelande",
    "i̇leti başlangıcı",
    "ileti başlangıcı",
    "i̇letilmiş mesaj",
    "iletilmiş mesaj",
    "i̇letilen i̇leti",
    "iletilen ileti",
    "початок листа, що пересилається",
    "перенаправлене повідомлення",
    "переслане повідомлення",
    "転送されたメッセージ",
    "転送メッセージ",
    "转发的邮件",
];

/// Phrases between dashes that start quoted history of any kind (Outlook writes them for replies
/// and forwards alike), so they show a forward only with other evidence.
pub static ORIGINAL_PHRASES: &[&str] = &[
    "original message",
    "ursprüngliche nachricht",
    "message d'origine",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "originalmeddelelse",
    "opprinnelig melding",
    "ursprungligt meddelande",
    "alkuperäinen viesti",
    "původní zpráva",
    "oryginalna wiadomość",
    "wiadomość oryginalna",
    "mensagem original",
    "eredeti üzenet",
    "исходное сообщение",
    "исходное письмо",
    "mesaj original",
    "orijinal mesaj",
    "pôvodná správa",
    "izvorna poruka",
    "元のメッセージ",
    "原始邮件",
];

/// What a subject's leading prefix says about the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Forward,
    Reply,
    Plain,
}

static FORWARD_PREFIXES: &[&str] = &[
    "fw",
    "fwd",
    "vs",
    "wg",
    "rv",
    "tr",
    "trs",
    "i",
    "pd",
    "enc",
    "redir.",
    "vb",
    "vl",
    "videresend",
    "i̇lt",
    "ilt",
    "doorst",
    "wtr",
    "tov",
    "továbbítás",
    "pf",
    "přeposlat",
    "转发",
    "転送",
    "пересл",
    "fwd.",
];

static REPLY_PREFIXES: &[&str] =
    &["re", "aw", "sv", "antw", "r", "res", "odp", "vá", "ynt", "отв", "ответ", "atb", "ats", "sv.", "odg", "返信", "回复", "答复"];

/// Classifies a subject by its outermost prefix ("Fwd: Re: x" is a forward), skipping leading
/// `[tags]` such as a pupil marker or "[EXTERNAL]".
pub fn subject_kind(subject: &str) -> SubjectKind {
    match subject_prefix(subject) {
        Some((kind, _)) => kind,
        None => SubjectKind::Plain,
    }
}

/// The subject with every leading forward prefix removed ("FW: Fwd: x" gives "x").
pub fn strip_forward_prefixes(subject: &str) -> String {
    let mut s = subject.trim();
    while let Some((SubjectKind::Forward, rest)) = subject_prefix(s) {
        s = rest;
    }
    s.trim().to_string()
}

fn subject_prefix(subject: &str) -> Option<(SubjectKind, &str)> {
    let mut s = subject.trim_start();
    while s.starts_with('[') {
        let end = s.find(']')?;
        s = s.get(end + 1..)?.trim_start();
    }
    let colon = s.find([':', '：'])?;
    let word = s.get(..colon)?.trim();
    let rest = s.get(colon..)?.trim_start_matches([':', '：']).trim_start();
    // "Re[2]" and "RE (2)" count as "Re".
    let word = word.split(['[', '(']).next().unwrap_or("").trim().to_lowercase();
    if word.is_empty() || word.chars().count() > 12 {
        return None;
    }
    if FORWARD_PREFIXES.contains(&word.as_str()) {
        return Some((SubjectKind::Forward, rest));
    }
    if REPLY_PREFIXES.contains(&word.as_str()) {
        return Some((SubjectKind::Reply, rest));
    }
    None
}

/// A line that is one header of a forwarded message: `Label: value` (any language, optional
/// space before the colon, full-width colon, `*bold*` labels from HTML conversion).
pub fn label_line(line: &str) -> Option<(Field, &str)> {
    let line = line.trim_start().trim_start_matches('*');
    let colon = line.find([':', '：'])?;
    let label = line.get(..colon)?.trim().trim_end_matches('*').trim();
    if label.is_empty() || label.chars().count() > 20 {
        return None;
    }
    let after = line.get(colon..)?;
    let after = after.strip_prefix(':').or_else(|| after.strip_prefix('：')).unwrap_or(after);
    let value = after.trim_start_matches('*').trim();
    let field = field_of(label)?;
    Some((field, value))
}

/// The field a label names, in any language (case-insensitive).
pub fn field_of(label: &str) -> Option<Field> {
    static INDEX: OnceLock<HashMap<String, Field>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut map = HashMap::new();
        for lang in LANGS {
            for (field, labels) in lang.fields() {
                for l in labels {
                    map.entry(l.to_lowercase()).or_insert(field);
                }
            }
        }
        map
    });
    index.get(&label.to_lowercase()).copied()
}

/// The languages whose From label starts `text` (for glued one-line headers).
pub fn langs_of_from(text: &str) -> impl Iterator<Item = &'static Lang> + '_ {
    let t = text.trim_start();
    LANGS.iter().filter(move |lang| {
        lang.from.iter().any(|l| t.starts_with(l) && t.get(l.len()..).is_some_and(|rest| rest.trim_start().starts_with([':', '：'])))
    })
}

/// Whether `phrase` (already without dashes and the trailing colon) names a forward.
pub fn is_forward_phrase(phrase: &str) -> bool {
    let p = phrase.trim().to_lowercase();
    FORWARD_PHRASES.contains(&p.as_str())
}

/// Whether `phrase` names quoted history ("Original Message") rather than a forward.
pub fn is_original_phrase(phrase: &str) -> bool {
    let p = phrase.trim().to_lowercase();
    ORIGINAL_PHRASES.contains(&p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(subject_kind("Fwd: Re: trip"), SubjectKind::Forward);
        assert_eq!(subject_kind("RE: FW: trip"), SubjectKind::Reply);
        assert_eq!(subject_kind("[Jane Smith] FW: trip"), SubjectKind::Forward);
        assert_eq!(subject_kind("WG: Ausflug"), SubjectKind::Forward);
        assert_eq!(subject_kind("AW: Ausflug"), SubjectKind::Reply);
        assert_eq!(subject_kind("Note: trip"), SubjectKind::Plain);
        assert_eq!(strip_forward_prefixes("FW: Fwd: trip"), "trip");
    }

    #[test]
    fn labels() {
        assert_eq!(label_line("From: A <a@b.c>"), Some((Field::From, "A <a@b.c>")));
        assert_eq!(label_line("Sujet : \tHello"), Some((Field::Subject, "Hello")));
        assert_eq!(label_line("件名：Hello"), Some((Field::Subject, "Hello")));
        assert_eq!(label_line("**Sent:** Monday"), Some((Field::Date, "Monday")));
        assert_eq!(label_line("Note: hello"), None);
    }
}
