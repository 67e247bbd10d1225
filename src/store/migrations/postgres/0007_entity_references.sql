-- The references each entity's spec makes (one `type<TAB>target` line
-- each), so start-up builds the relation index without parsing every
-- body. NULL: written before this column (start-up parses the body).
ALTER TABLE catalog_entities ADD COLUMN refs TEXT;
