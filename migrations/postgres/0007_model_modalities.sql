-- What a model takes and gives (text, image, audio, ...), for the public model list and the
-- console's catalog: JSON `{"input": [...], "output": [...]}`, filled by the seed.
ALTER TABLE model ADD COLUMN modalities TEXT NOT NULL DEFAULT '{"input":["text"],"output":["text"]}';
