"""Builds turngym/envs/games/data/cities.json (Guess My City):

    .venv/bin/python scripts/data/make_cities.py turngym/envs/games/data/cities.json

~140 cities with country, continent, national-capital and sea-coast flags,
approximate metropolitan population (millions) and approximate coordinates. Hand-written facts."""
import json, sys
E, AS, AF, NA, SA, OC = "Europe", "Asia", "Africa", "North America", "South America", "Oceania"
UK, US = "United Kingdom", "United States"
C = [
 ("London", UK, E, 1, 0, 14.8, 51.5, -0.1), ("Paris", "France", E, 1, 0, 12.3, 48.9, 2.35),
 ("Berlin", "Germany", E, 1, 0, 6.1, 52.5, 13.4), ("Madrid", "Spain", E, 1, 0, 6.7, 40.4, -3.7),
 ("Rome", "Italy", E, 1, 0, 4.3, 41.9, 12.5), ("Lisbon", "Portugal", E, 1, 1, 2.9, 38.7, -9.1),
 ("Amsterdam", "Netherlands", E, 1, 0, 2.5, 52.4, 4.9), ("Brussels", "Belgium", E, 1, 0, 2.1, 50.8, 4.4),
 ("Vienna", "Austria", E, 1, 0, 2.9, 48.2, 16.4), ("Athens", "Greece", E, 1, 1, 3.6, 38.0, 23.7),
 ("Stockholm", "Sweden", E, 1, 1, 2.4, 59.3, 18.1), ("Oslo", "Norway", E, 1, 1, 1.6, 59.9, 10.8),
 ("Copenhagen", "Denmark", E, 1, 1, 2.1, 55.7, 12.6), ("Helsinki", "Finland", E, 1, 1, 1.5, 60.2, 24.9),
 ("Dublin", "Ireland", E, 1, 1, 2.0, 53.3, -6.3), ("Warsaw", "Poland", E, 1, 0, 3.1, 52.2, 21.0),
 ("Prague", "Czech Republic", E, 1, 0, 2.7, 50.1, 14.4), ("Budapest", "Hungary", E, 1, 0, 3.0, 47.5, 19.0),
 ("Moscow", "Russia", E, 1, 0, 21.5, 55.8, 37.6), ("Saint Petersburg", "Russia", E, 0, 1, 6.2, 59.9, 30.3),
 ("Istanbul", "Turkey", E, 0, 1, 15.8, 41.0, 29.0), ("Barcelona", "Spain", E, 0, 1, 5.6, 41.4, 2.2),
 ("Milan", "Italy", E, 0, 0, 4.3, 45.5, 9.2), ("Naples", "Italy", E, 0, 1, 3.1, 40.9, 14.3),
 ("Munich", "Germany", E, 0, 0, 2.9, 48.1, 11.6), ("Hamburg", "Germany", E, 0, 0, 5.1, 53.6, 10.0),
 ("Manchester", UK, E, 0, 0, 2.8, 53.5, -2.2), ("Edinburgh", UK, E, 0, 1, 0.9, 56.0, -3.2),
 ("Marseille", "France", E, 0, 1, 1.9, 43.3, 5.4), ("Lyon", "France", E, 0, 0, 2.3, 45.8, 4.8),
 ("Zurich", "Switzerland", E, 0, 0, 1.4, 47.4, 8.5), ("Geneva", "Switzerland", E, 0, 0, 1.0, 46.2, 6.1),
 ("Kyiv", "Ukraine", E, 1, 0, 3.5, 50.5, 30.5), ("Bucharest", "Romania", E, 1, 0, 2.3, 44.4, 26.1),
 ("Venice", "Italy", E, 0, 1, 0.6, 45.4, 12.3), ("Porto", "Portugal", E, 0, 1, 1.7, 41.1, -8.6),
 ("Seville", "Spain", E, 0, 0, 1.5, 37.4, -6.0),
 ("Tokyo", "Japan", AS, 1, 1, 37.0, 35.7, 139.7), ("Osaka", "Japan", AS, 0, 1, 19.0, 34.7, 135.5),
 ("Kyoto", "Japan", AS, 0, 0, 1.5, 35.0, 135.8), ("Beijing", "China", AS, 1, 0, 21.5, 39.9, 116.4),
 ("Shanghai", "China", AS, 0, 1, 29.0, 31.2, 121.5), ("Hong Kong", "China", AS, 0, 1, 7.5, 22.3, 114.2),
 ("Guangzhou", "China", AS, 0, 0, 18.7, 23.1, 113.3), ("Shenzhen", "China", AS, 0, 1, 17.6, 22.5, 114.1),
 ("Chengdu", "China", AS, 0, 0, 16.0, 30.7, 104.1), ("Seoul", "South Korea", AS, 1, 0, 25.5, 37.6, 127.0),
 ("Busan", "South Korea", AS, 0, 1, 3.4, 35.2, 129.1), ("Delhi", "India", AS, 1, 0, 32.0, 28.6, 77.2),
 ("Mumbai", "India", AS, 0, 1, 21.0, 19.1, 72.9), ("Kolkata", "India", AS, 0, 0, 15.0, 22.6, 88.4),
 ("Bangalore", "India", AS, 0, 0, 13.0, 13.0, 77.6), ("Chennai", "India", AS, 0, 1, 11.5, 13.1, 80.3),
 ("Karachi", "Pakistan", AS, 0, 1, 17.0, 24.9, 67.0), ("Lahore", "Pakistan", AS, 0, 0, 13.5, 31.5, 74.3),
 ("Islamabad", "Pakistan", AS, 1, 0, 1.2, 33.7, 73.0), ("Dhaka", "Bangladesh", AS, 1, 0, 23.0, 23.8, 90.4),
 ("Bangkok", "Thailand", AS, 1, 0, 11.0, 13.8, 100.5), ("Singapore", "Singapore", AS, 1, 1, 5.9, 1.35, 103.8),
 ("Kuala Lumpur", "Malaysia", AS, 1, 0, 8.4, 3.1, 101.7), ("Jakarta", "Indonesia", AS, 1, 1, 33.0, -6.2, 106.8),
 ("Manila", "Philippines", AS, 1, 1, 14.0, 14.6, 121.0), ("Hanoi", "Vietnam", AS, 1, 0, 8.0, 21.0, 105.8),
 ("Ho Chi Minh City", "Vietnam", AS, 0, 0, 9.0, 10.8, 106.7), ("Taipei", "Taiwan", AS, 1, 0, 7.0, 25.0, 121.6),
 ("Tehran", "Iran", AS, 1, 0, 9.5, 35.7, 51.4), ("Baghdad", "Iraq", AS, 1, 0, 7.5, 33.3, 44.4),
 ("Riyadh", "Saudi Arabia", AS, 1, 0, 7.5, 24.7, 46.7), ("Dubai", "United Arab Emirates", AS, 0, 1, 3.6, 25.2, 55.3),
 ("Tel Aviv", "Israel", AS, 0, 1, 4.2, 32.1, 34.8), ("Beirut", "Lebanon", AS, 1, 1, 2.4, 33.9, 35.5),
 ("Kathmandu", "Nepal", AS, 1, 0, 1.5, 27.7, 85.3), ("Ulaanbaatar", "Mongolia", AS, 1, 0, 1.6, 47.9, 106.9),
 ("Tashkent", "Uzbekistan", AS, 1, 0, 2.9, 41.3, 69.3), ("Doha", "Qatar", AS, 1, 1, 2.4, 25.3, 51.5),
 ("Cairo", "Egypt", AF, 1, 0, 22.0, 30.0, 31.2), ("Alexandria", "Egypt", AF, 0, 1, 5.5, 31.2, 29.9),
 ("Lagos", "Nigeria", AF, 0, 1, 15.0, 6.5, 3.4), ("Abuja", "Nigeria", AF, 1, 0, 3.8, 9.1, 7.5),
 ("Kinshasa", "DR Congo", AF, 1, 0, 17.0, -4.3, 15.3), ("Nairobi", "Kenya", AF, 1, 0, 5.3, -1.3, 36.8),
 ("Addis Ababa", "Ethiopia", AF, 1, 0, 5.5, 9.0, 38.7), ("Johannesburg", "South Africa", AF, 0, 0, 6.2, -26.2, 28.0),
 ("Cape Town", "South Africa", AF, 0, 1, 4.8, -33.9, 18.4), ("Casablanca", "Morocco", AF, 0, 1, 4.3, 33.6, -7.6),
 ("Marrakesh", "Morocco", AF, 0, 0, 1.0, 31.6, -8.0), ("Accra", "Ghana", AF, 1, 1, 2.6, 5.6, -0.2),
 ("Dakar", "Senegal", AF, 1, 1, 3.3, 14.7, -17.4), ("Tunis", "Tunisia", AF, 1, 1, 2.7, 36.8, 10.2),
 ("Algiers", "Algeria", AF, 1, 1, 3.0, 36.8, 3.1), ("Luanda", "Angola", AF, 1, 1, 9.0, -8.8, 13.2),
 ("Dar es Salaam", "Tanzania", AF, 0, 1, 7.4, -6.8, 39.3), ("Khartoum", "Sudan", AF, 1, 0, 6.0, 15.5, 32.5),
 ("Kampala", "Uganda", AF, 1, 0, 3.7, 0.3, 32.6), ("Abidjan", "Ivory Coast", AF, 0, 1, 5.6, 5.3, -4.0),
 ("New York", US, NA, 0, 1, 19.5, 40.7, -74.0), ("Los Angeles", US, NA, 0, 1, 12.8, 34.1, -118.2),
 ("Chicago", US, NA, 0, 0, 9.4, 41.9, -87.6), ("Houston", US, NA, 0, 0, 7.3, 29.8, -95.4),
 ("Washington", US, NA, 1, 0, 6.3, 38.9, -77.0), ("Miami", US, NA, 0, 1, 6.1, 25.8, -80.2),
 ("San Francisco", US, NA, 0, 1, 4.6, 37.8, -122.4), ("Seattle", US, NA, 0, 1, 4.0, 47.6, -122.3),
 ("Boston", US, NA, 0, 1, 4.9, 42.4, -71.1), ("Las Vegas", US, NA, 0, 0, 2.3, 36.2, -115.1),
 ("Denver", US, NA, 0, 0, 3.0, 39.7, -105.0), ("Atlanta", US, NA, 0, 0, 6.2, 33.7, -84.4),
 ("Toronto", "Canada", NA, 0, 0, 6.7, 43.7, -79.4), ("Montreal", "Canada", NA, 0, 0, 4.3, 45.5, -73.6),
 ("Vancouver", "Canada", NA, 0, 1, 2.6, 49.3, -123.1), ("Ottawa", "Canada", NA, 1, 0, 1.5, 45.4, -75.7),
 ("Mexico City", "Mexico", NA, 1, 0, 22.0, 19.4, -99.1), ("Guadalajara", "Mexico", NA, 0, 0, 5.3, 20.7, -103.3),
 ("Cancun", "Mexico", NA, 0, 1, 0.9, 21.2, -86.8), ("Havana", "Cuba", NA, 1, 1, 2.1, 23.1, -82.4),
 ("Panama City", "Panama", NA, 1, 1, 1.9, 9.0, -79.5), ("Guatemala City", "Guatemala", NA, 1, 0, 3.0, 14.6, -90.5),
 ("Kingston", "Jamaica", NA, 1, 1, 1.2, 18.0, -76.8),
 ("Sao Paulo", "Brazil", SA, 0, 0, 22.4, -23.5, -46.6), ("Rio de Janeiro", "Brazil", SA, 0, 1, 13.6, -22.9, -43.2),
 ("Brasilia", "Brazil", SA, 1, 0, 4.8, -15.8, -47.9), ("Salvador", "Brazil", SA, 0, 1, 3.9, -13.0, -38.5),
 ("Buenos Aires", "Argentina", SA, 1, 1, 15.5, -34.6, -58.4), ("Cordoba", "Argentina", SA, 0, 0, 1.6, -31.4, -64.2),
 ("Santiago", "Chile", SA, 1, 0, 7.0, -33.4, -70.7), ("Valparaiso", "Chile", SA, 0, 1, 1.0, -33.0, -71.6),
 ("Lima", "Peru", SA, 1, 1, 11.0, -12.0, -77.0), ("Cusco", "Peru", SA, 0, 0, 0.5, -13.5, -72.0),
 ("Bogota", "Colombia", SA, 1, 0, 11.0, 4.7, -74.1), ("Medellin", "Colombia", SA, 0, 0, 4.0, 6.2, -75.6),
 ("Caracas", "Venezuela", SA, 1, 0, 3.0, 10.5, -66.9), ("Quito", "Ecuador", SA, 1, 0, 2.0, -0.2, -78.5),
 ("Montevideo", "Uruguay", SA, 1, 1, 1.8, -34.9, -56.2), ("La Paz", "Bolivia", SA, 1, 0, 1.9, -16.5, -68.1),
 ("Sydney", "Australia", OC, 0, 1, 5.3, -33.9, 151.2), ("Melbourne", "Australia", OC, 0, 1, 5.1, -37.8, 145.0),
 ("Brisbane", "Australia", OC, 0, 1, 2.6, -27.5, 153.0), ("Perth", "Australia", OC, 0, 1, 2.1, -31.95, 115.9),
 ("Canberra", "Australia", OC, 1, 0, 0.46, -35.3, 149.1), ("Auckland", "New Zealand", OC, 0, 1, 1.7, -36.8, 174.8),
 ("Wellington", "New Zealand", OC, 1, 1, 0.4, -41.3, 174.8),
]
KEYS = ("name", "country", "continent", "capital", "coastal", "population_millions", "lat", "lon")
rows = [dict(zip(KEYS, (n, c, k, bool(cap), bool(coast), p, la, lo))) for n, c, k, cap, coast, p, la, lo in C]
assert len({r["name"] for r in rows}) == len(rows)
out = sys.argv[1] if len(sys.argv) > 1 else None
print(len(rows), "cities,", len({r["country"] for r in rows}), "countries")
if out:
    with open(out, "w") as f:
        f.write("{\n\"description\": " + json.dumps("Cities for Guess My City: hand-written facts; population = approximate metropolitan population in millions; coordinates rounded.") + ',\n"cities": [\n')
        f.write(",\n".join(json.dumps(r) for r in rows) + "\n]}\n")
