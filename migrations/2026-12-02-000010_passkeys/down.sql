DROP TABLE step_up_proofs;
DROP TABLE webauthn_ceremonies;
DROP TABLE passkeys;
