"""Whether the customer's last words say the problem is not solved: a cheap, local reading.

The party billed per resolution writes the agent's messages and, in native input, the signals;
it does not write what the customer typed into the help desk. When the customer had the last
word, after the agent's last public message, and that word is "still nothing", "it does not
work", "same error" or "let me talk to a person", no confirmation flag, CSAT or judge's reading
should auto-verify the ticket. :func:`reads_as_failure` is that check: a lexicon of failure
cues in 16 languages; a success cue after the last of them ("it wasn't working this morning
but it's fine now") cancels them. It is a review trigger (the shipped rubric's
``customer_reports_failure`` rule sends such tickets to a person), so it errs on the side of
a false alarm: a resolved ticket it misreads costs a look, not a wrong bill.

The cues were first written from knowledge of how customers write, before the measurement set
in ``datasets/last_words/`` existed (a helper wrote that set without reading this module), then
revised once from its odd-numbered half; the figures that count, on the even half never read
row by row, are in ``docs/rubrics.md``. The customer is not the adversary here: the billed party
writes the agent's side, not the customer's complaint.
"""

from __future__ import annotations

import re
import unicodedata

from judge.models import Outcome
from judge.normalise import clean

__all__ = ["customer_tail", "customer_turn", "reads_as_failure"]

# Accents are dropped before matching (:func:`_fold`), so the patterns are written without
# them: "nao", "todavia", "ca". Letters that are not an accent on a base (Polish "ł", Turkish
# "ı") stay.
_NEG_EN = (
    r"(?:doesn'?t|does not|didn'?t|did not|isn'?t|is not|wasn'?t|was not|won'?t|will not|"
    r"hasn'?t|has not|haven'?t|have not|can'?t|cannot|couldn'?t|could not|still not|not)"
)
_FIX_EN = (
    r"(?:work|works|working|worked|help|helps|helped|helping|fix|fixes|fixed|arrive|arrived|"
    r"load|loads|loading|open|opens|change|changed|resolve|resolved|solve|solved|go through|"
    r"went through|come through|came through|do anything|sorted)"
)
_HUMAN_EN = (
    r"(?:human|person|people|agent|manager|supervisor|someone|somebody|representative|rep|operator)"
)

# fmt: off
_FAILURE_PATTERNS = [
    # English
    rf"\b{_NEG_EN}\s+(?:\w+\s+)?{_FIX_EN}\b",
    r"\bstill\s+(?:not|n'?t|no|nothing|broken|failing|fails|failed|the same|same|getting|get|"
    r"gets|shows|showing|says|saying|happening|happens|there|stuck|down|missing|waiting|"
    r"charged|locked|blank|empty|wrong|an? error|error|can'?t|cannot|won'?t|doesn'?t|isn'?t|"
    r"hasn'?t|haven'?t|didn'?t|does|do|declined|pending|expired|invalid|crash\w*|"
    r"freez\w*)\b(?!\s+believe)",
    r"\b(?:same|identical)\s+(?:thing|problem|issue|error|message|result|screen)\b",
    r"\bnothing\s+(?:arrived|came|happened|happens|changed|changes|works|worked|loads|showed up)\b",
    r"\b(?:never|not yet|haven'?t|have not|didn'?t|did not)\s+(?:\w+\s+)?(?:arrived|received|"
    r"receive|got|get|come|came)\b",
    rf"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|your\s+)?(?:real\s+|actual\s+|"
    rf"live\s+)?{_HUMAN_EN}\b",
    r"\b(?:real|actual|live)\s+(?:human|person|agent)\b",
    rf"\b(?:get|give|transfer|connect|put)\s+me\s+(?:through\s+)?(?:to|with)\s+(?:a\s+|an\s+|"
    rf"your\s+)?{_HUMAN_EN}\b",
    r"\bescalat\w*",
    r"\b(?:useless|waste of (?:my )?time|not helpful|unhelpful|no help|pointless)\b",
    r"\b(?:tried|did|done)\s+(?:that|this|it|those|all that)\b[^.!?]*\balready\b",
    r"\balready\s+(?:tried|did|done)\b",
    r"\b(?:can'?t|cannot|unable to)\s+(?:log\s*in|sign\s*in|login|access|pay|check\s*out|"
    r"download|open|use)\b",
    r"\b(?:not|isn'?t|is not|that'?s not|that is not)\s+(?:what i asked|right|correct|true|"
    r"the (?:right|correct) (?:one|answer))\b",
    r"\bwrong\s+(?:answer|order|item|amount|account|size|address|one|again)\b",
    r"\b(?:not|never)\s+(?:fixed|resolved|solved|working|sorted)\b",
    r"\b(?:broken|fails|failing)\s+(?:again|still)\b",
    r"\b(?:i(?:'?ll| will)|going to)\s+(?:cancel|complain|file a complaint|dispute|charge ?back)\b",
    r"\bdisputing\b|\bfile an? (?:complaint|dispute)\b|\bi(?:'?m|"
    r" am) (?:going to )?(?:complain|disput)\w*",
    r"\bstill\s+(?:a|an)\s+(?:blank|empty|white|black|error|problem|issue)\b|\bstill[.!?…]*\s*$",
    r"\b(?:got|received|get|getting|see|seeing)\s+nothing\b|\bnothing\s+(?:yet|here|in my inbox)\b",
    r"\b(?:doesn'?t|does not|don'?t|do not)\s+exist\b|\bno such\b",
    r"\bi (?:already )?told you\b|\bas i (?:said|mentioned|wrote)\b|\blike i said\b",
    r"\b(?:the\s+)?exact(?:ly)?\s+(?:the\s+)?same\b|\bsame\s+as\s+(?:before|the (?:old|first|"
    r"last|previous)|yesterday|last time)\b|\b(?:nah|nope|no|still)\W*same\b",
    r"\b(?:even\s+)?worse\b|\bnow\s+it'?s\s+(?:\w+\s+)?(?:wrong|broken|worse)\b",
    r"\bnow i (?:have|got) nothing\b|\bi lost (?:all|everything|my)\b",
    r"\b(?:charged|billed)\s+(?:me\s+)?(?:again|twice|three times|double)\b",
    r"\bcrash(?:es|ed|ing)\b",
    # Any language: an HTTP error code, a message that now ends on "same", a quoted screen text,
    # the same attempt made several times already, a worse state
    r"\b(?:400|401|403|404|500|502|503)\b|\b(?:unauthorized|not found|forbidden)\b",
    r"\b(?:same|ayni|aynı|igual|pareil|gleich|dasselbe|hetzelfde|samma|sama|"
    r"то же самое)[.!…]*\s*$|(?:一样|同じ)[。.!！…]*\s*$",
    r"\b(?:says|shows|showing|gives|giving|displays|dice|sagt|zeigt|dit|affiche|diz|mostra|"
    r"zegt|pokazuje|wyskakuje|pisze)\s*[:\-]?\s*['\"“‘«„]",
    r"(?:\balready|\bschon|\bdeja|\bzaten|\bуже|\budah|\bsudah|\bya|\bja|\bgia|\bal|\bjuz|"
    r"\bredan)\b[^.!?]{0,30}(?:\b\d+\s*(?:x|times|mal|fois|veces|vezes|volte|keer|razy|kere|"
    r"kez|раза?|kali|gånger|ganger)\b|\b(?:twice|two times|three times|several times|dreimal|"
    r"zweimal|mehrmals|deux fois|trois fois|plusieurs fois|dos veces|tres veces|varias veces|"
    r"duas vezes|tres vezes|varias vezes|due volte|tre volte|piu volte|twee keer|drie keer|"
    r"dwa razy|trzy razy|несколько раз))",
    r"(?:\b\d+\s*(?:x|kere|kez|kali|раза?)\b|\b(?:dreimal|zweimal|trois fois|tres veces|"
    r"tres vezes|tre volte|drie keer|trzy razy)\b)[^.!?]{0,30}(?:\balready\b|\bschon\b|"
    r"\bdeja\b|\bzaten\b|\bуже\b|\budah\b|\bsudah\b|\bya\b|\bgia\b|\bal\b)",
    r"\b(?:deja fait|schon (?:gemacht|versucht|probiert)|ya lo (?:hice|intente|probe)|"
    r"ja (?:fiz|tentei)|gia fatto|l'ho gia fatto|al (?:gedaan|geprobeerd)|juz (?:probowal\w*|"
    r"robil\w*)|redan (?:gjort|testat|provat))\b|(?:zaten (?:denedim|yaptım|yaptim)|"
    r"уже (?:пробовал\w*|делал\w*|перезапускал\w*)|(?:udah|sudah) (?:coba|dicoba|dilakukan))",
    r"\b(?:schlimmer|pire|peor|pior|peggio|erger|gorzej|daha kotu|хуже)\b|(?:更糟|更差|もっと悪)",
    # German
    r"\b(?:funktioniert|geht|klappt|lauft|laeuft)\s+(?:\w+\s+){0,2}(?:nicht|immer noch nicht|"
    r"noch nicht)\b",
    r"\b(?:immer noch|noch immer|nach wie vor|weiterhin)\b",
    r"\bnicht\s+(?:gelost|geloest|behoben|erledigt|angekommen|erhalten|bekommen|geholfen)\b",
    r"\bhat\s+(?:\w+\s+)?nicht\s+(?:geholfen|funktioniert|geklappt)\b",
    r"\bnichts\s+(?:angekommen|passiert|geandert|geaendert|bekommen)\b",
    r"\b(?:keine?n?)\s+(?:e-?mail|mail|nachricht|code|link)\s+(?:\w+\s+)?(?:bekommen|erhalten)\b",
    r"\b(?:gleiche|selbe|derselbe|dieselbe|dasselbe)n?\s+(?:fehler|problem|meldung)\b",
    r"\b(?:mit\s+)?(?:einem|einer)\s+(?:menschen|mitarbeiter\w*|person|echten)\b",
    r"\bnutzlos\b|\bbringt nichts\b",
    # French
    r"\b(?:ne\s+|n')?(?:marche|fonctionne|va)\s+(?:toujours\s+)?pas\b",
    r"\btoujours\s+(?:pas|rien|le meme|la meme|bloque|bloquee|impossible|la meme erreur|"
    r"en panne)\b",
    r"\b(?:rien|pas)\s+(?:recu|regle|resolu|change|marche)\b",
    r"\b(?:ca|cela)\s+n'a\s+(?:pas|rien)\s+(?:aide|change|marche|fonctionne|regle|resolu)\b",
    r"\b(?:parler|parle)\s+(?:a|avec)\s+(?:un|une|quelqu'un)\s*(?:humain|personne|conseiller|"
    r"conseillere|agent|responsable|vrai|vraie|reel)?\b",
    r"\bmeme\s+(?:probleme|erreur|message)\b",
    r"\bn'(?:est|ai)\s+(?:toujours\s+)?(?:pas|rien)\s+(?:arrive|recu|regle|resolu)\b",
    r"\binutile\b",
    # Spanish
    r"\bno\s+(?:me\s+)?(?:funciona|funciono|sirve|sirvio|ayudo|ayuda|llego|ha llegado|"
    r"han llegado|se soluciono|se arreglo|esta resuelto|carga|abre)\b",
    r"\bsigue\s+(?:sin|igual|fallando|dando|apareciendo|el mismo|la misma|mal|bloquead\w*)\b",
    r"\b(?:todavia|aun)\s+(?:no|nada|sigue|nada)\b",
    r"\b(?:mismo|misma)\s+(?:error|problema|mensaje)\b",
    r"\b(?:hablar|hable)\s+con\s+(?:un|una|alguien)\s*(?:humano|persona|agente|supervisor|"
    r"encargado|real)?\b",
    r"\bno\s+(?:he\s+)?recibido\b",
    # Portuguese
    r"\b(?:cobraram|cobrado|cobrou)\s+(?:\w+\s+)?(?:de novo|duas vezes|tres vezes|outra vez)\b",
    r"\bnao\s+(?:\w+\s+)?(?:funciona|funcionou|resolveu|resolvido|chegou|recebi|ajudou|"
    r"adiantou|deu certo|abre|carrega)\b",
    r"\bcontinua\s+(?:sem|igual|dando|com|o mesmo|a mesma|nao)\b",
    r"\bainda\s+(?:nao|nada|esta|continua|da|aparece)\b",
    r"\bmesm[oa]\s+(?:erro|problema|mensagem)\b",
    r"\bfalar\s+com\s+(?:um|uma|alguem)\s*(?:humano|pessoa|atendente|real)?\b",
    # Italian
    r"\bnon\s+(?:\w+\s+)?(?:funziona|va|ha funzionato|e arrivat\w|arriva|e servito|serve|"
    r"ha aiutato|e risolto|risolto|ricevuto)\b",
    r"\bancora\s+(?:niente|nulla|non|lo stesso|la stessa|bloccat\w)\b",
    r"\bstess[oa]\s+(?:errore|problema|messaggio)\b",
    r"\bparlare\s+con\s+(?:un|una|qualcuno)\s*(?:operatore|persona|umano|essere umano|reale)?\b",
    r"\b(?:un|una|l')\s*(?:operatore|operatrice)\b|\bpersona (?:reale|vera)\b|\bessere umano\b",
    # Dutch
    r"\bwerkt\s+(?:\w+\s+){0,2}niet\b",
    r"\bnog\s+(?:steeds|altijd)\b",
    r"\bniet\s+(?:opgelost|ontvangen|gelukt|aangekomen|geholpen)\b",
    r"\b(?:zelfde|dezelfde|hetzelfde)\s+(?:fout|probleem|foutmelding|melding)\b",
    r"\bmet\s+een\s+(?:mens|medewerker|echt\w*)\b",
    # Polish ("ł" is a letter of its own, not an accent)
    r"\bnie\s+(?:\w+\s+)?(?:działa|dziala|pomogło|pomoglo|doszło|doszlo|przyszło|przyszlo|"
    r"dostałem|dostalem|dostałam|dostalam|rozwiązało|rozwiazalo)",
    r"\b(?:nadal|wciąż|wciaz|dalej|ciagle|ciągle)\s+(?:nie|to samo|ten sam|nic)\b",
    r"\bten\s+sam\s+(?:błąd|blad|problem)\b",
    r"\bz\s+(?:człowiekiem|czlowiekiem|konsultantem|pracownikiem)\b",
    # Turkish (after accent folding: "calısmıyor", "hala", "aynı")
    r"(?:calısmıyor|calismiyor|olmadı|olmadi|olmuyor|gelmedi|ulasmadı|yaramadı|yaramadi|"
    r"duzelmedi|cozulmedi|cozulmedı|acılmıyor|acilmiyor)",
    r"\b(?:hala|hâlâ|halen)\b",
    r"\b(?:aynı|ayni)\s+(?:hata|sorun|problem|mesaj)",
    r"(?:temsilci|yetkili|insanla|gercek bir|sikayet)",
    # Swedish
    r"\b(?:fungerar|funkar|gar)\s+(?:\w+\s+)?(?:fortfarande\s+)?inte\b",
    r"\bfortfarande\b",
    r"\bsamma\s+(?:fel|problem|felmeddelande)\b",
    r"\binte\s+(?:lost|fixat|lost sig|kommit|fatt|hjalpt)\b",
    r"\bprata\s+med\s+en\s+(?:manniska|person|handlaggare|riktig)\b",
    # Indonesian
    r"\bmasih\s+(?:tidak|belum|sama|error|gagal|nggak|gak|tetap)\b",
    r"\b(?:tidak|nggak|gak|ga)\s+(?:berfungsi|bisa|berhasil|membantu|masuk|jalan|work)\b",
    r"\bbelum\s+(?:masuk|diterima|berhasil|bisa|terselesaikan|selesai|sampai|beres)\b",
    r"\bsama\s+saja\b|\b(?:tetap|tetep)\s+(?:sama|gagal|error|tidak|gak|nggak)\b",
    r"\b(?:bicara|ngobrol|bicara)\s+dengan\s+(?:manusia|orang|petugas|agen|cs)\b",
    # Russian (й and ё read as и and е)
    r"\bне\s+(?:\w+\s+)?(?:работает|заработало|помогло|помогает|пришло|пришел|пришла|пришли|"
    r"получил\w*|решен\w*|открывается|грузится)",
    r"(?:все еще|всё ещё|еще не|до сих пор|по-прежнему|по прежнему|опять)",
    r"\b(?:та же|та же самая|такая же)\s+(?:ошибка|проблема)",
    r"(?:человек(?:ом|а)\b|оператор\w*|живо\w+\s+\w+|менеджер\w*)",
    r"\bбесполезно",
    # Japanese
    r"(?:まだ|相変わらず|依然として)",
    r"(?:直って(?:い)?ない|直りません|直らない|治らない)",
    r"(?:でき(?:ない|ません))",
    r"(?:届か(?:ない)|届いて(?:い)?(?:ない|ません)|届きません|来ない|来ません)",
    r"(?:変わら(?:ない)|変わりません)",
    r"(?:同じ(?:エラー|問題|画面|メッセージ))",
    r"(?:解決し(?:て(?:い)?)?(?:ない|ません))",
    r"(?:使え(?:ない|ません)|動か(?:ない)|動きません|ダメ|だめ)",
    r"(?:人(?:間)?と話|担当者|オペレーター|有人)",
    # Chinese
    r"(?:还是|仍然|依然|仍旧|依旧)",
    r"(?:没(?:有)?(?:用|收到|解决|反应|变化|好)|不(?:行|能用|管用|好使|起作用))",
    r"(?:无法|不能)(?:登录|使用|打开|支付|下载)",
    r"(?:同样的|一样的)(?:错误|问题)",
    r"(?:人工(?!智能)|真人|找人|投诉|投訴)",
    # Arabic
    r"(?:لا\s*(?:يعمل|تعمل|يشتغل)|لم\s*(?:يعمل|تعمل|يصل|تصل|يصلني|تصلني|يحل|تحل|يساعد|ينجح|يتغير))",
    r"(?:ما زال|مازال|لا يزال|لازال|لا تزال)",
    r"(?:نفس\s*(?:المشكلة|الخطأ|الرسالة))",
    r"(?:(?:موظف|شخص|انسان|إنسان)\s*(?:حقيقي)?|مدير)",
    # Hindi
    r"(?:नहीं\s*(?:चल|हुआ|हुई|आया|आई|मिला|मिली|खुल)|काम नहीं|अभी भी|अब भी)",
    r"(?:वही\s*(?:समस्या|एरर|त्रुटि|दिक्कत))",
    r"(?:किसी\s*(?:इंसान|व्यक्ति|एजेंट|असली)|इंसान से)",
]

_SUCCESS_PATTERNS = [
    # English: the problem is gone, said in the same words
    r"\b(?:works|working|worked|fine|ok|okay|good|sorted|fixed|resolved|solved|gone|there|"
    r"arrived|through|back)\s+now\b",
    r"\bnow\s+(?:it\s+)?(?:works|work|it'?s working|is working|working|fine|ok|okay|good|loads|"
    r"shows|arrived)\b",
    r"\b(?:that|this|it|you)\s+(?:did it|did the trick|worked|works|fixed it|helped|solved it|"
    r"sorted it)\b",
    r"\ball\s+(?:good|set|sorted|fixed|working)\b",
    r"\b(?:it'?s|it is|is|all)\s+(?:working|fixed|sorted|resolved|solved)(?:\s+now)?\b",
    r"\bno\s+(?:longer|more)\s+(?:an issue|a problem|needed|broken)\b",
    r"\bnot\s+any\s*more\b",
    r"\bno need\b",
    r"\bproblem\s+solved\b",
    r"\b(?:came|come|went|gone) through\b|\b(?:got|received) it\b|^(?:works|working|fixed)\b",
    r"\bno longer (?:appears|shows|happens|comes up)\b|\bya no (?:sale|aparece|pasa)\b",
    # German, French, Spanish, Portuguese, Italian, Dutch, Polish, Turkish, Swedish, Indonesian
    r"\b(?:funktioniert|geht|klappt)\s+(?:jetzt|wieder|nun)\b|\bjetzt\s+(?:geht|funktioniert|"
    r"klappt)\b",
    r"\b(?:marche|fonctionne)\s+(?:maintenant|enfin|a nouveau|de nouveau)\b|\bc'est\s+(?:regle|"
    r"bon|resolu)\b",
    r"\bya\s+(?:funciona|esta|me llego|llego)\b|\bfunciona\s+(?:ahora|ya)\b",
    r"\b(?:ja|agora)\s+(?:funciona|funcionou|deu certo|chegou)\b",
    r"\b(?:ora|adesso)\s+funziona\b|\bfunziona\s+(?:ora|adesso)\b",
    r"\bwerkt\s+(?:nu|weer)\b",
    r"\b(?:juz|teraz)\s+(?:(?:juz|jest)\s+)?(?:działa|dziala|ok|dobrze)\b",
    r"(?:duzeldi|cozuldu|artık calısıyor|simdi calısıyor)",
    r"\b(?:fungerar|funkar)\s+nu\b",
    r"\bsudah\s+(?:bisa|berhasil|masuk|berfungsi|beres)\b",
    # Russian, Japanese, Chinese, Arabic, Hindi
    r"(?:теперь (?:все |всё )?(?:работает|открывается|нормально|в порядке)|заработало)",
    r"(?:できました|直りました|解決しました|届きました|動きました)",
    r"(?:好了|可以了|解决了|收到了|搞定了)",
    r"(?:يعمل الآن|تم الحل|تم حل)",
    r"(?:अब\s*(?:काम कर|चल)|हो गया)",
]
# fmt: on

_FAILURE = [re.compile(p) for p in _FAILURE_PATTERNS]
_SUCCESS = [re.compile(p) for p in _SUCCESS_PATTERNS]
# A success cue read with a negation just before or after it is not one ("it's not working now").
_NEGATION_BEFORE = re.compile(
    r"(?:\b(?:not|no|nicht|pas|nao|non|niet|nie|inte|tidak|не)\b|n't|不|没|नहीं)\s*$"
)
_READ_CHARS = 4000
_DIACRITICS = re.compile("[\u0300-\u036f]")
_SPACES = re.compile(r"\s+")
# A failure cue right after "no more" is a problem gone: "Works. No more 404."
_GONE_BEFORE = re.compile(
    r"(?:\bno more|\bno longer|\bnot anymore|\bya no|\bplus de|\bkeine? mehr)\s*$"
)
_NEGATION_AFTER = re.compile(r"^\s*(?:\S+\s+)?(?:nicht|niet|inte|pas|not)\b")


def _fold(text: str) -> str:
    """Lower case, accents off Latin letters (NFKD, combining diacritics dropped), one space."""
    decomposed = unicodedata.normalize("NFKD", clean(text).casefold().replace("\u2019", "'"))
    bare = unicodedata.normalize("NFC", _DIACRITICS.sub("", decomposed))
    return _SPACES.sub(" ", bare)


def _last_success(text: str) -> int:
    """Where the last success cue that no negation touches starts, or -1."""
    last = -1
    for pattern in _SUCCESS:
        for found in pattern.finditer(text):
            before = text[max(0, found.start() - 16) : found.start()]
            after = text[found.end() : found.end() + 16]
            if not _NEGATION_BEFORE.search(before) and not _NEGATION_AFTER.search(after):
                last = max(last, found.start())
    return last


def reads_as_failure(text: str) -> str | None:
    """The failure cue ``text`` contains (as found), or None when it has none or says it works.

    Parameters
    ----------
    text
        What the customer wrote last (several messages may be joined with newlines).

    Returns
    -------
    str or None
        The first failure cue's words, for a verdict's reason; None when no failure cue matches,
        or when a success cue that no negation touches ("fine now", "funktioniert jetzt") comes
        after the last failure cue: the customer's latest words decide.

    Examples
    --------
    >>> reads_as_failure("Still nothing arrived. This is not fixed.")
    'still nothing'
    >>> reads_as_failure("Es funktioniert immer noch nicht.")
    'funktioniert immer noch nicht'
    >>> reads_as_failure("It wasn't working this morning but it's fine now, thanks!") is None
    True
    >>> reads_as_failure("Thanks, that did it!") is None
    True
    >>> reads_as_failure("It works on my laptop, but the app still crashes.")
    'still crashes'

    """
    if len(text) > 2 * _READ_CHARS:
        # A pasted log in the last message: its opening words and its end say how it went.
        text = text[:_READ_CHARS] + "\n" + text[-_READ_CHARS:]
    folded = _fold(text)
    failures = [
        m
        for pattern in _FAILURE
        for m in pattern.finditer(folded)
        if not _GONE_BEFORE.search(folded[max(0, m.start() - 16) : m.start()])
    ]
    if not failures:
        return None
    last_failure = max(failures, key=lambda m: m.start())
    # The customer's latest words decide: "it wasn't working, but it's fine now" is solved,
    # "it works on the laptop but the app still crashes" is not.
    if _last_success(folded) > last_failure.start():
        return None
    return min(failures, key=lambda m: m.start()).group(0).strip()


def customer_turn(outcome: Outcome) -> list[int]:
    """The numbers (1-based) of the customer messages after the agent's last public message.

    Tool results and system lines do not end the customer's turn (they answer the agent); a
    report has no customer.

    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="T", kind="support_ticket", conversation=[
    ...     Message(role="customer", text="Reset link?"), Message(role="agent", text="Sent."),
    ...     Message(role="customer", text="Nothing yet."), Message(role="tool", text="{}"),
    ...     Message(role="customer", text="Hello?")])
    >>> customer_turn(o)
    [3, 5]
    """
    if outcome.kind == "report":
        return []
    turn: list[int] = []
    for number, message in enumerate(outcome.conversation, start=1):
        if message.role == "customer":
            turn.append(number)
        elif message.role == "agent" and message.public:
            turn = []
    return turn


def customer_tail(outcome: Outcome) -> str | None:
    """What the customer wrote after the agent's last public message (:func:`customer_turn`),
    or None if nothing.

    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="T", kind="support_ticket", conversation=[
    ...     Message(role="customer", text="Reset link?"), Message(role="agent", text="Sent."),
    ...     Message(role="customer", text="Nothing yet."), Message(role="customer", text="Hello?")])
    >>> customer_tail(o)
    'Nothing yet.\\nHello?'
    """
    turn = customer_turn(outcome)
    return "\n".join(outcome.conversation[n - 1].text for n in turn) if turn else None
