DROP TABLE notice_outbox;
