-- Cached ENVELOPE, BODYSTRUCTURE and BODY answers holding 8-bit text are
-- computed again (see the PostgreSQL migration of the same name). GLOB
-- classes compare characters, so this matches any character outside
-- U+0001..U+007F.
UPDATE emails SET envelope = NULL, bodystructure = NULL, body_basic = NULL
WHERE envelope GLOB '*[^' || char(1) || '-' || char(127) || ']*'
   OR bodystructure GLOB '*[^' || char(1) || '-' || char(127) || ']*'
   OR body_basic GLOB '*[^' || char(1) || '-' || char(127) || ']*';
