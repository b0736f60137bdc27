-- The endpoint each usage is for (usage events' `kind`: chat, embedding, ...), which says the unit
-- it is priced by. Rows written before it are chats, as events without the field are.
ALTER TABLE usage_ledger ADD COLUMN kind text NOT NULL DEFAULT 'chat';
