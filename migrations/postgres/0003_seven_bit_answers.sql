-- ENVELOPE, BODYSTRUCTURE and BODY no longer carry 8-bit bytes: header text
-- that is not ASCII now goes out as RFC 2047 encoded words, because no session
-- has enabled UTF8=ACCEPT (DESIGN §10). Answers cached before that may hold
-- raw 8-bit text; forgetting them makes the next FETCH compute them again.
-- An answer that is all ASCII is the same under both rules, so only rows with
-- a character outside U+0001..U+007F are touched (and running this twice
-- changes nothing).
UPDATE emails SET envelope = NULL, bodystructure = NULL, body_basic = NULL
WHERE envelope ~ '[^\x01-\x7f]'
   OR bodystructure ~ '[^\x01-\x7f]'
   OR body_basic ~ '[^\x01-\x7f]';
