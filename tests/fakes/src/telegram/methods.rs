//! The Bot API methods: authentication, injected 429s, and each method's checks and
//! effects, in the order the real server applies them.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::state::{BotState, NewMessage, Shared, State, Termination, Webhook, take_tokens};
use super::wire::{Answer, Args, Params, unix_now};
use super::{BotMessage, ChatKind, Draft, poll, webhook};

/// Longest message text, in characters after trimming.
const MAX_TEXT: usize = 4096;

/// Actions `sendChatAction` takes (with the older aliases Telegram still reads).
const CHAT_ACTIONS: [&str; 15] = [
    "cancel",
    "typing",
    "record_video",
    "upload_video",
    "record_voice",
    "record_audio",
    "upload_voice",
    "upload_audio",
    "upload_photo",
    "upload_document",
    "choose_sticker",
    "find_location",
    "pick_up_location",
    "record_video_note",
    "upload_video_note",
];

/// Every method the fake implements, lower-cased.
const METHODS: [&str; 18] = [
    "getme",
    "getupdates",
    "sendmessage",
    "editmessagetext",
    "sendmessagedraft",
    "sendchataction",
    "deletemessage",
    "getchat",
    "setmycommands",
    "getmycommands",
    "deletemycommands",
    "answercallbackquery",
    "setmessagereaction",
    "logout",
    "close",
    "setwebhook",
    "deletewebhook",
    "getwebhookinfo",
];

/// Answers one call of `method` by the bot behind `token`.
pub(super) async fn dispatch(
    shared: &Arc<Shared>,
    token: &str,
    method: &str,
    params: Result<Params, Answer>,
) -> Answer {
    let name = method.to_ascii_lowercase();
    {
        let mut state = shared.lock();
        if let Err(answer) = state.resolve(token) {
            return answer;
        }
        let counters = &mut state.counters;
        match name.as_str() {
            "getupdates" => counters.get_updates += 1,
            "sendmessage" => counters.send_message += 1,
            "editmessagetext" => counters.edit_message_text += 1,
            "sendmessagedraft" => counters.send_message_draft += 1,
            "sendchataction" => counters.send_chat_action += 1,
            "setwebhook" => counters.set_webhook += 1,
            "deletewebhook" => counters.delete_webhook += 1,
            _ => {}
        }
        let exists =
            METHODS.contains(&name.as_str()) && (name != "sendmessagedraft" || state.knobs.drafts);
        if !exists {
            return Answer::error(404, "Not Found");
        }
        if let Some((left, retry_after)) = state.injected.get_mut(&name) {
            let retry_after = *retry_after;
            *left = left.saturating_sub(1);
            if *left == 0 {
                state.injected.remove(&name);
            }
            return Answer::too_many(retry_after);
        }
    }
    // The token and the method are checked before the body is read.
    let params = match params {
        Ok(params) => params,
        Err(answer) => return answer,
    };
    let args = Args(&params);
    if name == "getupdates" {
        return poll::get_updates(shared, token, args).await;
    }
    let mut state = shared.lock();
    let answer = match name.as_str() {
        "setwebhook" => {
            let (answer, deliver) = set_webhook(&mut state, token, args);
            if let Some(generation) = deliver {
                tokio::spawn(webhook::deliver(
                    Arc::clone(shared),
                    token.to_owned(),
                    generation,
                ));
            }
            return answer;
        }
        _ => call(&mut state, token, &name, args),
    };
    answer.unwrap_or_else(|e| e)
}

/// The synchronous methods.
fn call(state: &mut State, token: &str, name: &str, args: Args<'_>) -> Result<Answer, Answer> {
    let knobs = Knobs {
        auto_create: state.knobs.auto_create_chats,
        chat_limit: state.knobs.chat_limit,
        global_limit: state.knobs.global_limit,
    };
    let bot = state.bot(token)?;
    match name {
        "getme" => Ok(Answer::ok(bot.me())),
        "sendmessage" => send_message(bot, &knobs, args),
        "editmessagetext" => edit_message_text(bot, &knobs, args),
        "sendmessagedraft" => send_message_draft(bot, &knobs, args),
        "sendchataction" => send_chat_action(bot, &knobs, args),
        "deletemessage" => delete_message(bot, args),
        "getchat" => {
            let chat_id = chat_id(args)?;
            bot.bot_chat(chat_id, knobs.auto_create)?;
            Ok(Answer::ok(bot.chat_value(chat_id).unwrap_or(Value::Null)))
        }
        "setmycommands" => {
            let Some(Value::Array(commands)) = args.json("commands") else {
                return Err(Answer::bad("parameter \"commands\" is required"));
            };
            bot.commands = Value::Array(commands);
            Ok(Answer::ok(json!(true)))
        }
        "getmycommands" => Ok(Answer::ok(bot.commands.clone())),
        "deletemycommands" => {
            bot.commands = json!([]);
            Ok(Answer::ok(json!(true)))
        }
        "deletewebhook" => Ok(delete_webhook(bot, args)),
        "getwebhookinfo" => Ok(webhook_info(bot)),
        // answerCallbackQuery, setMessageReaction, logOut, close: accepted, no effect.
        _ => Ok(Answer::ok(json!(true))),
    }
}

/// The knob values the message methods need, copied out before the bot is borrowed.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    auto_create: bool,
    chat_limit: Option<super::Limit>,
    global_limit: Option<super::Limit>,
}

/// `chat_id`: required; a non-numeric one (an `@username`) names no chat the fake has.
fn chat_id(args: Args<'_>) -> Result<i64, Answer> {
    match args.int("chat_id") {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Answer::bad("chat_id is empty")),
        Err(_) => Err(Answer::bad("chat not found")),
    }
}

/// Message text as Telegram keeps it: trimmed, 1..=4096 characters.
fn message_text(args: Args<'_>) -> Result<String, Answer> {
    let text = args.string("text").unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Err(Answer::bad("message text is empty"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Answer::bad("message is too long"));
    }
    Ok(text.to_owned())
}

/// Takes a token from the chat's and the bot's buckets, or answers 429.
fn rate_limit(bot: &mut BotState, knobs: &Knobs, chat_id: i64) -> Result<(), Answer> {
    let BotState { chats, bucket, .. } = bot;
    let Some(chat) = chats.get_mut(&chat_id) else {
        return Ok(());
    };
    take_tokens(
        [
            (&mut chat.bucket, knobs.chat_limit),
            (bucket, knobs.global_limit),
        ],
        Instant::now(),
    )
    .map_err(Answer::too_many)
}

/// `message_thread_id` checked against the chat: topics must exist where the chat has
/// topics; elsewhere the parameter is ignored.
fn thread_in(bot: &BotState, chat_id: i64, thread: Option<i64>) -> Result<Option<i64>, Answer> {
    let (Some(thread), Some(chat)) = (thread.filter(|t| *t != 0), bot.chats.get(&chat_id)) else {
        return Ok(None);
    };
    if !chat.has_topics() {
        return Ok(None);
    }
    if chat.topics.contains_key(&thread) {
        Ok(Some(thread))
    } else {
        Err(Answer::bad("message thread not found"))
    }
}

fn send_message(bot: &mut BotState, knobs: &Knobs, args: Args<'_>) -> Result<Answer, Answer> {
    let chat_id = chat_id(args)?;
    let text = message_text(args)?;
    bot.bot_chat(chat_id, knobs.auto_create)?;
    let thread_id = thread_in(bot, chat_id, args.int_lenient("message_thread_id"))?;
    let (reply_to, lenient) = match args.json("reply_parameters") {
        Some(Value::Object(p)) => {
            let p = Args(&p);
            (
                p.int_lenient("message_id"),
                p.flag("allow_sending_without_reply"),
            )
        }
        _ => (
            args.int_lenient("reply_to_message_id"),
            args.flag("allow_sending_without_reply"),
        ),
    };
    let reply_to = reply_to.filter(|id| *id != 0);
    let known = |id: i64| {
        bot.chats
            .get(&chat_id)
            .is_some_and(|c| c.messages.contains_key(&id))
    };
    let reply_to = match reply_to {
        Some(id) if !known(id) && lenient => None,
        Some(id) if !known(id) => return Err(Answer::bad("message to be replied not found")),
        other => other,
    };
    rate_limit(bot, knobs, chat_id)?;
    let mut fields = Map::new();
    fields.insert("text".to_owned(), json!(text));
    let (message_id, message) = bot.new_message(
        chat_id,
        NewMessage {
            from: bot.me(),
            from_bot: true,
            thread_id,
            reply_to,
            fields,
        },
    );
    bot.sent.push(BotMessage {
        chat_id,
        message_id,
        thread_id,
        text,
        reply_to,
        edits: 0,
        sent_at: Instant::now(),
    });
    Ok(Answer::ok(message))
}

fn edit_message_text(bot: &mut BotState, knobs: &Knobs, args: Args<'_>) -> Result<Answer, Answer> {
    if args.has("inline_message_id") {
        // The fake sends no inline messages, so no inline message id is valid.
        return Err(Answer::bad("MESSAGE_ID_INVALID"));
    }
    let chat_id = chat_id(args)?;
    let message_id = match args.int("message_id") {
        Ok(Some(id)) if id != 0 => id,
        Ok(_) => return Err(Answer::bad("message identifier is not specified")),
        Err(_) => return Err(Answer::bad("message to edit not found")),
    };
    let text = message_text(args)?;
    bot.bot_chat(chat_id, knobs.auto_create)?;
    let stored = bot
        .chats
        .get(&chat_id)
        .and_then(|c| c.messages.get(&message_id))
        .ok_or_else(|| Answer::bad("message to edit not found"))?;
    if !stored.from_bot {
        return Err(Answer::bad("message can't be edited"));
    }
    if stored.json.get("text").and_then(Value::as_str) == Some(text.as_str()) {
        return Err(Answer::bad(
            "message is not modified: specified new message content and reply markup are \
             exactly the same as a current content and reply markup of the message",
        ));
    }
    rate_limit(bot, knobs, chat_id)?;
    let edit_date = unix_now();
    let stored = bot
        .chats
        .get_mut(&chat_id)
        .and_then(|c| c.messages.get_mut(&message_id))
        .ok_or_else(|| Answer::bad("message to edit not found"))?;
    for json in [&mut stored.json, &mut stored.full] {
        json["text"] = json!(text);
        json["edit_date"] = json!(edit_date);
    }
    let edited = stored.full.clone();
    if let Some(sent) = bot
        .sent
        .iter_mut()
        .find(|m| m.chat_id == chat_id && m.message_id == message_id)
    {
        sent.text = text;
        sent.edits += 1;
    }
    Ok(Answer::ok(edited))
}

fn send_message_draft(bot: &mut BotState, knobs: &Knobs, args: Args<'_>) -> Result<Answer, Answer> {
    let chat_id = chat_id(args)?;
    let draft_id = args
        .int_lenient("draft_id")
        .filter(|id| *id != 0)
        .ok_or_else(|| Answer::bad("RANDOM_ID_INVALID"))?;
    // Current Bot API versions take an empty text: a "Thinking…" placeholder.
    let text = args.string("text").unwrap_or_default().trim().to_owned();
    if text.chars().count() > MAX_TEXT {
        return Err(Answer::bad("message is too long"));
    }
    bot.bot_chat(chat_id, knobs.auto_create)?;
    let private = bot
        .chats
        .get(&chat_id)
        .is_some_and(|c| c.chat.kind == ChatKind::Private);
    if !private {
        return Err(Answer::bad("TEXTDRAFT_PEER_INVALID"));
    }
    bot.drafts.push(Draft {
        chat_id,
        draft_id,
        thread_id: args.int_lenient("message_thread_id").filter(|t| *t != 0),
        text,
        at: Instant::now(),
    });
    Ok(Answer::ok(json!(true)))
}

fn send_chat_action(bot: &mut BotState, knobs: &Knobs, args: Args<'_>) -> Result<Answer, Answer> {
    // Telegram reads the action before it looks at the chat.
    let action = args
        .string("action")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(Answer::bad("wrong parameter action in request"));
    }
    let chat_id = chat_id(args)?;
    bot.bot_chat(chat_id, knobs.auto_create)?;
    Ok(Answer::ok(json!(true)))
}

fn delete_message(bot: &mut BotState, args: Args<'_>) -> Result<Answer, Answer> {
    let chat_id = chat_id(args)?;
    let message_id = args
        .int_lenient("message_id")
        .ok_or_else(|| Answer::bad("message identifier is not specified"))?;
    let removed = bot
        .chats
        .get_mut(&chat_id)
        .and_then(|c| c.messages.remove(&message_id));
    if removed.is_none() {
        return Err(Answer::bad("message to delete not found"));
    }
    bot.sent
        .retain(|m| !(m.chat_id == chat_id && m.message_id == message_id));
    Ok(Answer::ok(json!(true)))
}

/// Whether a secret token is 1-256 characters of `A-Z a-z 0-9 _ -`.
fn valid_secret(secret: &str) -> bool {
    (1..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `setWebhook`; the second value is the generation of a delivery task to start.
fn set_webhook(state: &mut State, token: &str, args: Args<'_>) -> (Answer, Option<u64>) {
    let bot = match state.bot(token) {
        Ok(bot) => bot,
        Err(answer) => return (answer, None),
    };
    let url = args.string("url").unwrap_or_default().trim().to_owned();
    if url.is_empty() {
        // An empty URL removes the webhook, as on the real API.
        return (delete_webhook(bot, args), None);
    }
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return (
            Answer::bad("bad webhook: HTTPS url must be provided for webhook"),
            None,
        );
    }
    let secret = args.string("secret_token").filter(|s| !s.is_empty());
    if secret.as_deref().is_some_and(|s| !valid_secret(s)) {
        return (
            Answer::bad("secret token contains unallowed characters"),
            None,
        );
    }
    if let Some(list) = args.list("allowed_updates") {
        bot.allowed_updates = Some(list);
    }
    if args.flag("drop_pending_updates") {
        bot.queue.clear();
    }
    if let Some(current) = &bot.webhook
        && current.url == url
        && current.secret == secret
    {
        return (
            Answer::ok_described(json!(true), "Webhook is already set"),
            None,
        );
    }
    bot.webhook_generation += 1;
    let generation = bot.webhook_generation;
    bot.webhook = Some(Webhook {
        url,
        secret,
        generation,
        last_error: None,
    });
    for (_, stop) in bot.polls.drain(..) {
        // The poll may have ended on its own meanwhile; nothing to tell then.
        let _ = stop.send(Termination::SetWebhook);
    }
    bot.wake();
    (
        Answer::ok_described(json!(true), "Webhook was set"),
        Some(generation),
    )
}

fn delete_webhook(bot: &mut BotState, args: Args<'_>) -> Answer {
    if args.flag("drop_pending_updates") {
        bot.queue.clear();
    }
    if bot.webhook.take().is_none() {
        return Answer::ok_described(json!(true), "Webhook is already deleted");
    }
    bot.wake();
    Answer::ok_described(json!(true), "Webhook was deleted")
}

fn webhook_info(bot: &mut BotState) -> Answer {
    bot.prune_disallowed();
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": bot.queue.len(),
    });
    if let Some(hook) = &bot.webhook {
        info["url"] = json!(hook.url);
        info["max_connections"] = json!(40);
        info["ip_address"] = json!("127.0.0.1");
        if let Some((date, message)) = &hook.last_error {
            info["last_error_date"] = json!(date);
            info["last_error_message"] = json!(message);
        }
        if let Some(allowed) = &bot.allowed_updates {
            info["allowed_updates"] = json!(allowed);
        }
    }
    Answer::ok(info)
}
