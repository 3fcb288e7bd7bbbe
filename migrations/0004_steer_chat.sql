-- 0004_steer_chat.sql: POST /api/steer-chat answers identical requests from steer_outputs by
-- each run's conversation ("inputTextChatTemplate", compact JSON) rather than by prompt.

-- steer-chat cache: WHERE "modelId"=$1 AND "inputTextChatTemplateMd5" IN (md5($2), md5($3))
CREATE INDEX steer_outputs_chat_cache ON steer_outputs ("modelId", "inputTextChatTemplateMd5")
    WHERE "inputTextChatTemplateMd5" IS NOT NULL;
