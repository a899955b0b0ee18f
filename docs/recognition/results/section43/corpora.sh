set -e
cd /work/data/s35
t0=$(date +%s)
speechllm synth --out corpus30k --per-language 30000 > synth30k.log 2>&1
python /work/main/scripts/recipe_data.py corpus30k >> synth30k.log 2>&1
echo "corpus30k secs=$(( $(date +%s)-t0 ))" >> times.log
t0=$(date +%s)
speechllm synth --out corpus10k --per-language 10000 > synth10k.log 2>&1
python /work/main/scripts/recipe_data.py corpus10k >> synth10k.log 2>&1
python - <<'PY'
import json
ids=set(open('/work/main/docs/recognition/dev96.ids').read().split())
rows=[json.loads(l) for l in open('corpus10k/dev.jsonl')]
taken={};out=[]
for r in rows:
    if r['id'] in ids: continue
    if taken.get(r['language'],0)<150:
        taken[r['language']]=taken.get(r['language'],0)+1; out.append(r)
open('corpus10k/dev300.jsonl','w').writelines(json.dumps(r)+'\n' for r in out)
print(len(out))
PY
echo "corpus10k secs=$(( $(date +%s)-t0 ))" >> times.log
